package kafka

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
)

// LagCollector exports the consumer group's lag per partition of the job
// topic, read from the brokers at each scrape: the partition's newest
// offset minus the group's committed offset. A scrape while Kafka does not
// answer exports nothing (the series go stale) rather than failing.
type LagCollector struct {
	cfg    Config
	client *kafkago.Client
	desc   *prometheus.Desc
}

var _ prometheus.Collector = (*LagCollector)(nil)

// NewLagCollector reads the lag of cfg's consumer group.
func NewLagCollector(cfg Config) *LagCollector {
	cfg.Defaults()
	return &LagCollector{
		cfg:    cfg,
		client: &kafkago.Client{Addr: kafkago.TCP(cfg.Brokers...), Timeout: 2 * time.Second, Transport: newTransport(cfg)},
		desc: prometheus.NewDesc("vitrine_kafka_consumer_lag", "Image jobs on the topic not yet committed by the worker group, per partition.",
			[]string{"partition"}, nil),
	}
}

// Describe sends the one descriptor the collector exports,
// vitrine_kafka_consumer_lag (prometheus.Collector).
func (c *LagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect sends the lag of each partition of the image job topic, read
// from the brokers at scrape time; when they do not answer, it sends
// nothing (prometheus.Collector).
func (c *LagCollector) Collect(ch chan<- prometheus.Metric) {
	lags, err := c.Lag(context.Background())
	if err != nil {
		return
	}
	for p, lag := range lags {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(lag), strconv.Itoa(p))
	}
}

// Lag returns the group's lag by partition.
func (c *LagCollector) Lag(ctx context.Context) (map[int]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	meta, err := c.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{c.cfg.Topic}})
	if err != nil {
		return nil, err
	}
	var parts []int
	for _, t := range meta.Topics {
		if t.Name == c.cfg.Topic && t.Error == nil {
			for _, p := range t.Partitions {
				parts = append(parts, p.ID)
			}
		}
	}
	reqs := make([]kafkago.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
	}
	offsets, err := c.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{c.cfg.Topic: reqs}})
	if err != nil {
		return nil, err
	}
	committed, err := c.client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: c.cfg.GroupID, Topics: map[string][]int{c.cfg.Topic: parts}})
	if err != nil {
		return nil, err
	}
	done := map[int]int64{}
	for _, p := range committed.Topics[c.cfg.Topic] {
		if p.Error == nil && p.CommittedOffset >= 0 {
			done[p.Partition] = p.CommittedOffset
		}
	}
	lags := map[int]int64{}
	for _, p := range offsets.Topics[c.cfg.Topic] {
		if p.Error != nil {
			continue
		}
		first := p.FirstOffset
		if d, ok := done[p.Partition]; ok {
			first = d
		}
		lags[p.Partition] = max(p.LastOffset-first, 0)
	}
	return lags, nil
}
