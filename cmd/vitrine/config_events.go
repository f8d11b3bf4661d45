package main

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/transport/rest"
	"github.com/vitrine-dev/vitrine/transport/webhook"
)

// EventsConfig is how products' events are kept and delivered.
type EventsConfig struct {
	Retention time.Duration
	Heartbeat time.Duration
	// Streams and StreamsPerClient bound live event streams (0: none).
	Streams          int
	StreamsPerClient int
	WebhookURLs      string
	WebhookSecret    string
	WebhookEvents    string

	// Parsed by validate.
	endpoints []string
	secret    webhook.Secret
	types     []catalog.EventType
}

func (e *EventsConfig) settings() []setting {
	str, dur, num := setString, setDuration, setInt
	return []setting{
		{"events-retention", "VITRINE_EVENTS_RETENTION", "1h", "how long products' events are kept for subscribers that resume (Last-Event-ID)", dur(&e.Retention)},
		{"events-heartbeat", "VITRINE_EVENTS_HEARTBEAT", "15s", "how often an idle event stream sends a heartbeat comment", dur(&e.Heartbeat)},
		{"events-streams", "VITRINE_EVENTS_STREAMS", "5000", "live event streams one node serves at most; beyond, 503 (0: no limit)", num(&e.Streams, 0)},
		{"events-streams-per-client", "VITRINE_EVENTS_STREAMS_PER_CLIENT", "10", "live event streams one API key or, without a key, one client address may hold at once; beyond, 429 (0: no limit)", num(&e.StreamsPerClient, 0)},
		{"webhook-urls", "VITRINE_WEBHOOK_URLS", "", "comma-separated http(s) URLs that every product event is POSTed to (empty: no webhooks)", str(&e.WebhookURLs)},
		{"webhook-secret", "VITRINE_WEBHOOK_SECRET", "", "whsec_… secret that signs webhooks (Standard Webhooks); vitrine webhook-secret makes one", str(&e.WebhookSecret)},
		{"webhook-events", "VITRINE_WEBHOOK_EVENTS", "", "comma-separated event types sent to webhooks (empty: all)", str(&e.WebhookEvents)},
	}
}

func (e *EventsConfig) validate() error {
	e.endpoints = splitList(e.WebhookURLs)
	for _, ep := range e.endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("VITRINE_WEBHOOK_URLS (--webhook-urls): %q is not an http(s) URL", ep)
		}
	}
	if len(e.endpoints) > 0 || e.WebhookSecret != "" {
		secret, err := webhook.ParseSecret(e.WebhookSecret)
		if err != nil {
			return fmt.Errorf("VITRINE_WEBHOOK_SECRET (--webhook-secret): %w", err)
		}
		e.secret = secret
	}
	e.types = nil
	for _, t := range splitList(e.WebhookEvents) {
		if !slices.Contains(catalog.EventTypes(), catalog.EventType(t)) {
			return fmt.Errorf("VITRINE_WEBHOOK_EVENTS (--webhook-events): unknown event type %q (known: %v)", t, catalog.EventTypes())
		}
		e.types = append(e.types, catalog.EventType(t))
	}
	return nil
}

// fields lists the events configuration for the start-up log line.
func (e *EventsConfig) fields() map[string]any {
	return map[string]any{"retention": e.Retention.String(), "heartbeat": e.Heartbeat.String(),
		"streams": e.Streams, "streams_per_client": e.StreamsPerClient,
		"webhook_urls": maskURLs(e.WebhookURLs), "webhook_secret": mask(e.WebhookSecret), "webhook_events": e.WebhookEvents}
}

// rest is the events' share of the front door's configuration.
func (e *EventsConfig) rest(c *rest.Config) {
	c.EventsHeartbeat = e.Heartbeat
	c.EventStreams, c.EventStreamsPerClient = noLimit(e.Streams), noLimit(e.StreamsPerClient)
}

// noLimit maps a setting's 0 (no limit) to the front door's -1.
func noLimit(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// maskURLs masks the secrets of a comma-separated list of URLs (their
// passwords and secret-looking query parameters).
func maskURLs(list string) string {
	urls := splitList(list)
	for i, u := range urls {
		urls[i] = maskURL(u)
	}
	return strings.Join(urls, ",")
}
