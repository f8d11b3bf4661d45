package main

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vitrine-dev/vitrine/catalog/access"
	"github.com/vitrine-dev/vitrine/transport/rest"
)

// The two ways vitrine runs, after Meilisearch's split: production (the
// default) needs an API key for every write; development (what `make run`
// starts) lets anonymous clients write, and only on a loopback address.
const (
	envProduction  = "production"
	envDevelopment = "development"
)

// AccessConfig is who may do what, and what each client may cost.
type AccessConfig struct {
	Env string
	// AnonymousWrites is "", "true" or "false": empty means true in
	// development (on loopback) and false in production.
	AnonymousWrites string
	PublicReads     string
	AdminToken      string
	KeyCacheTTL     time.Duration

	RateAnonymousText string
	RateAnonWriteText string
	RateAuthFailText  string
	RateKeyText       string
	TrustedProxyText  string
	IdempotencyTTL    time.Duration

	UploadMemory    int
	UploadWait      time.Duration
	MaxBacklog      int
	MaxOwnerBacklog int

	HeaderTimeout  time.Duration
	ReadTimeout    time.Duration
	WriteTimeout   time.Duration
	IdleTimeout    time.Duration
	MaxHeaderBytes int
	MaxConns       int
	MaxConnsPerIP  int
	CORSOrigins    string

	// Parsed by validate.
	rateAnonymous  access.Rate
	rateAnonWrite  access.Rate
	rateAuthFail   access.Rate
	rateKey        access.Rate
	trustedProxies []netip.Prefix
	openWrites     bool
}

func (a *AccessConfig) settings() []setting {
	str, num, dur, oneOf := setString, setInt, setDuration, setOneOf
	return []setting{
		{"env", "VITRINE_ENV", envProduction, "production (writes need an API key) or development (anonymous writes, loopback only)", oneOf(&a.Env, envProduction, envDevelopment)},
		{"anonymous-writes", "VITRINE_ANONYMOUS_WRITES", "", "let clients without a key write: true or false (default: true in development, false in production)", oneOf(&a.AnonymousWrites, "", "true", "false")},
		{"public-reads", "VITRINE_PUBLIC_READS", "true", "true: anyone may read products; false: reads need a key with the read scope", oneOf(&a.PublicReads, "true", "false")},
		{"admin-token", "VITRINE_ADMIN_TOKEN", "", "bootstrap admin credential: a bearer token that acts as a key with the admin scope (empty: none)", str(&a.AdminToken)},
		{"key-cache-ttl", "VITRINE_KEY_CACHE_TTL", "5s", "how long a node trusts a key it looked up: a revoked key stops working everywhere within it", dur(&a.KeyCacheTTL)},
		{"rate-anonymous", "VITRINE_RATE_ANONYMOUS", "100/s", "reads per client address without a key, e.g. 100/s, 6000/min; 0: no limit (behind a CDN or load balancer set VITRINE_TRUSTED_PROXIES too)", str(&a.RateAnonymousText)},
		{"rate-anonymous-writes", "VITRINE_RATE_ANONYMOUS_WRITES", "100/s", "writes per client address without a key, where anonymous writes are allowed; counted apart from reads; 0: no limit", str(&a.RateAnonWriteText)},
		{"rate-auth-failures", "VITRINE_RATE_AUTH_FAILURES", "30/min", "failed authentications per client address before its unknown credentials get 429 without a lookup; 0: no limit", str(&a.RateAuthFailText)},
		{"rate-key", "VITRINE_RATE_KEY", "1000/s", "requests per API key, e.g. 1000/s; 0: no limit", str(&a.RateKeyText)},
		{"trusted-proxies", "VITRINE_TRUSTED_PROXIES", "", "comma-separated addresses/CIDRs of proxies whose X-Forwarded-For names the client", str(&a.TrustedProxyText)},
		{"idempotency-ttl", "VITRINE_IDEMPOTENCY_TTL", "24h", "how long the response of an Idempotency-Key is kept for retries", dur(&a.IdempotencyTTL)},
		{"upload-memory", "VITRINE_UPLOAD_MEMORY", "64MiB", "upload bytes in flight, all uploads together; others wait", num(&a.UploadMemory, 1<<20)},
		{"upload-wait", "VITRINE_UPLOAD_WAIT", "10s", "how long an upload waits for room in the upload memory before a 503", dur(&a.UploadWait)},
		{"max-backlog", "VITRINE_MAX_BACKLOG", "10000", "image jobs waiting beyond which uploads get 503 (0: no limit)", num(&a.MaxBacklog, 0)},
		{"max-owner-backlog", "VITRINE_MAX_OWNER_BACKLOG", "1000", "image jobs of one owner's products waiting beyond which their uploads get 429 (0: no limit)", num(&a.MaxOwnerBacklog, 0)},
		{"header-timeout", "VITRINE_HEADER_TIMEOUT", "10s", "time limit to receive a request's header", dur(&a.HeaderTimeout)},
		{"read-timeout", "VITRINE_READ_TIMEOUT", "60s", "time limit to receive a request's body, after its header", dur(&a.ReadTimeout)},
		{"write-timeout", "VITRINE_WRITE_TIMEOUT", "60s", "time limit to write a response", dur(&a.WriteTimeout)},
		{"idle-timeout", "VITRINE_IDLE_TIMEOUT", "2m", "how long an idle keep-alive connection is kept", dur(&a.IdleTimeout)},
		{"max-header-bytes", "VITRINE_MAX_HEADER_BYTES", "16KiB", "largest request header", num(&a.MaxHeaderBytes, 4<<10)},
		{"max-conns", "VITRINE_MAX_CONNS", "10000", "open connections at most; beyond, new ones get 503", num(&a.MaxConns, 1)},
		{"max-conns-per-ip", "VITRINE_MAX_CONNS_PER_IP", "0", "open connections per client address at most; beyond, 429 (0: no limit; keep 0 behind a load balancer)", num(&a.MaxConnsPerIP, 0)},
		{"cors-origins", "VITRINE_CORS_ORIGINS", "", "comma-separated origins browsers may call from, or * (empty: CORS off)", str(&a.CORSOrigins)},
	}
}

// validate parses the limits and refuses anonymous writes on an address
// others can reach unless the operator asked for exactly that.
func (a *AccessConfig) validate(addr string) error {
	var err error
	if a.rateAnonymous, err = rest.ParseRate(a.RateAnonymousText); err != nil {
		return fmt.Errorf("VITRINE_RATE_ANONYMOUS (--rate-anonymous) %w", err)
	}
	if a.rateAnonWrite, err = rest.ParseRate(a.RateAnonWriteText); err != nil {
		return fmt.Errorf("VITRINE_RATE_ANONYMOUS_WRITES (--rate-anonymous-writes) %w", err)
	}
	if a.rateAuthFail, err = rest.ParseRate(a.RateAuthFailText); err != nil {
		return fmt.Errorf("VITRINE_RATE_AUTH_FAILURES (--rate-auth-failures) %w", err)
	}
	if a.rateKey, err = rest.ParseRate(a.RateKeyText); err != nil {
		return fmt.Errorf("VITRINE_RATE_KEY (--rate-key) %w", err)
	}
	if a.trustedProxies, err = rest.ParseTrustedProxies(splitList(a.TrustedProxyText)); err != nil {
		return fmt.Errorf("VITRINE_TRUSTED_PROXIES (--trusted-proxies): %w", err)
	}
	if a.AdminToken != "" && len(a.AdminToken) < 16 {
		return fmt.Errorf("VITRINE_ADMIN_TOKEN (--admin-token) must be at least 16 characters: it grants everything")
	}
	loopback := isLoopback(addr)
	if a.AnonymousWrites == "true" && a.PublicReads == "false" {
		return fmt.Errorf("VITRINE_ANONYMOUS_WRITES=true and VITRINE_PUBLIC_READS=false contradict each other: " +
			"a client without a key could write what it may not read; set one of them otherwise")
	}
	switch {
	case a.AnonymousWrites == "true":
		a.openWrites = true
	case a.AnonymousWrites == "" && a.Env == envDevelopment:
		if !loopback {
			return fmt.Errorf("VITRINE_ENV=development lets anyone write without a key, and VITRINE_ADDR=%s is reachable from other machines: "+
				"listen on a loopback address (VITRINE_ADDR=127.0.0.1:8080), or run VITRINE_ENV=production with API keys, "+
				"or set VITRINE_ANONYMOUS_WRITES=true if open writes on this address are really what you want", addr)
		}
		a.openWrites = true
	}
	return nil
}

// isLoopback reports whether a listen address accepts loopback
// connections only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && loopback(host)
}

// rest is the front door's share of the configuration.
func (a *AccessConfig) rest(maxUpload int, requestTimeout time.Duration, metrics string) rest.Config {
	return rest.Config{
		MetricsAccess:       metrics,
		MaxUploadBytes:      maxUpload,
		RequestTimeout:      requestTimeout,
		AdminToken:          a.AdminToken,
		AnonymousWrites:     a.openWrites,
		PrivateReads:        a.PublicReads == "false",
		KeyCacheTTL:         a.KeyCacheTTL,
		RateAnonymous:       a.rateAnonymous,
		RateAnonymousWrites: a.rateAnonWrite,
		RateKey:             a.rateKey,
		RateAuthFailures:    a.rateAuthFail,
		TrustedProxies:      a.trustedProxies,
		IdempotencyTTL:      a.IdempotencyTTL,
		UploadMemory:        int64(a.UploadMemory),
		AdmissionWait:       a.UploadWait,
		HeaderTimeout:       a.HeaderTimeout,
		ReadTimeout:         a.ReadTimeout,
		WriteTimeout:        a.WriteTimeout,
		IdleTimeout:         a.IdleTimeout,
		MaxHeaderBytes:      a.MaxHeaderBytes,
		MaxConns:            a.MaxConns,
		MaxConnsPerIP:       a.MaxConnsPerIP,
		CORSOrigins:         splitList(a.CORSOrigins),
	}
}

// fields lists the access configuration for the start-up log line.
func (a *AccessConfig) fields() map[string]any {
	return map[string]any{
		"env": a.Env, "anonymous_writes": a.openWrites, "public_reads": a.PublicReads, "admin_token": mask(a.AdminToken),
		"key_cache_ttl": a.KeyCacheTTL.String(), "rate_anonymous": a.RateAnonymousText, "rate_anonymous_writes": a.RateAnonWriteText, "rate_auth_failures": a.RateAuthFailText, "rate_key": a.RateKeyText,
		"trusted_proxies": a.TrustedProxyText, "idempotency_ttl": a.IdempotencyTTL.String(),
		"upload_memory": a.UploadMemory, "upload_wait": a.UploadWait.String(),
		"max_backlog": a.MaxBacklog, "max_owner_backlog": a.MaxOwnerBacklog,
		"header_timeout": a.HeaderTimeout.String(), "read_timeout": a.ReadTimeout.String(), "write_timeout": a.WriteTimeout.String(), "idle_timeout": a.IdleTimeout.String(),
		"max_header_bytes": a.MaxHeaderBytes, "max_conns": a.MaxConns, "max_conns_per_ip": a.MaxConnsPerIP,
		"cors_origins": a.CORSOrigins,
	}
}
