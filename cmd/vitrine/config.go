package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/transport/urlfetch"
)

// Config is everything vitrine serve is told at start, from flags and
// VITRINE_* environment variables (flags win).
type Config struct {
	Addr            string
	DataDir         string
	PublicURL       string
	LogFormat       string
	LogLevel        string
	Role            string
	MaxUploadBytes  int
	MaxImportBytes  int
	MaxImportRows   int
	ImportLease     time.Duration
	MaxPixels       int
	MaxFrames       int
	Workers         int
	JobTimeout      time.Duration
	JobMaxAttempts  int
	ShutdownTimeout time.Duration
	RequestTimeout  time.Duration
	CacheEntries    int
	FetchAllow      string
	RecipeFile      string
	// On-demand renders: their workers and queue on each API node, the
	// width ladder, and the keys URLs are signed with (none: unsigned).
	RenderWorkers    int
	RenderQueue      int
	RenderWidthStep  int
	RenderMaxWidth   int
	MediaSigningKeys string
	PprofAddr        string
	MetricsAccess    string
	MetricsAddr      string
	// GCInterval is how often orphan files are swept (0: never); GCGrace
	// how old an orphan must be to go.
	GCInterval time.Duration
	GCGrace    time.Duration

	// Access and limits (config_access.go).
	Access AccessConfig
	// Events and webhooks (config_events.go).
	Events EventsConfig

	// Production backends: each one set switches its port from the
	// embedded adapter to the real one.
	PostgresURL     string
	RedisURL        string
	KafkaBrokers    string
	KafkaTopic      string
	KafkaPartitions int
	// KafkaReplication and KafkaMinISR are the replication factor and
	// min.insync.replicas of the topics vitrine creates (0: the broker's).
	KafkaReplication int
	KafkaMinISR      int
	KafkaRedeliver   time.Duration
	S3Endpoint       string
	S3Bucket         string
	S3Region         string
	S3AccessKey      string
	S3SecretKey      string
	S3PathStyle      string

	// Cluster: membership, addresses and TLS between nodes (clusterconfig.go).
	ClusterName       string
	ClusterProvider   string
	ClusterHost       string
	ClusterBind       string
	ClusterPort       int
	ClusterPeers      string
	ManagePort        int
	ClusterManageAddr string
	EtcdEndpoints     string
	ClusterTLSCert    string
	ClusterTLSKey     string
	ClusterTLSCA      string
	ClusterInsecure   string
	ShutdownDrain     time.Duration
}

// setting is one configuration value: its flag, its variable and its default.
type setting struct {
	flag, env, def, usage string
	set                   func(string) error
}

func (c *Config) settings() []setting {
	str, num, dur, oneOf := setString, setInt, setDuration, setOneOf
	return append([]setting{
		{"addr", "VITRINE_ADDR", "", "HTTP listen address (default :8080; 127.0.0.1:8080 in development)", str(&c.Addr)},
		{"data-dir", "VITRINE_DATA_DIR", "./data", "directory of the embedded database and image files", str(&c.DataDir)},
		{"public-url", "VITRINE_PUBLIC_URL", "", "base URL of image files (default: http://localhost:PORT/media)", str(&c.PublicURL)},
		{"log-format", "VITRINE_LOG_FORMAT", "json", "log format: json (production) or console (development)", oneOf(&c.LogFormat, "json", "console")},
		{"log-level", "VITRINE_LOG_LEVEL", "info", "log level: debug, info, warn or error", oneOf(&c.LogLevel, "debug", "info", "warn", "error")},
		{"role", "VITRINE_ROLE", "all", "what this process runs: api (HTTP), worker (image jobs) or all", oneOf(&c.Role, "all", "api", "worker")},
		{"max-upload-bytes", "VITRINE_MAX_UPLOAD_BYTES", "25MiB", "largest image upload accepted (bytes, or with KiB/MiB)", num(&c.MaxUploadBytes, 1)},
		{"import-max-bytes", "VITRINE_IMPORT_MAX_BYTES", "100MiB", "largest import file accepted (bytes, or with KiB/MiB)", num(&c.MaxImportBytes, 1)},
		{"import-max-rows", "VITRINE_IMPORT_MAX_ROWS", "100000", "most rows (products) one import file may hold", num(&c.MaxImportRows, 1)},
		{"import-lease", "VITRINE_IMPORT_LEASE", "30s", "how long a node holds an import it stopped recording rows of before another node takes it over", dur(&c.ImportLease)},
		{"max-pixels", "VITRINE_MAX_PIXELS", "50000000", "largest image accepted, in pixels summed over frames", num(&c.MaxPixels, 1)},
		{"max-frames", "VITRINE_MAX_FRAMES", "1000", "most frames an animated image may have", num(&c.MaxFrames, 1)},
		{"workers", "VITRINE_WORKERS", strconv.Itoa(runtime.NumCPU()), "image jobs processed at once", num(&c.Workers, 1)},
		{"job-timeout", "VITRINE_JOB_TIMEOUT", "60s", "time limit of one image job", dur(&c.JobTimeout)},
		{"job-max-attempts", "VITRINE_JOB_MAX_ATTEMPTS", "5", "how often an image job is started before it is failed", num(&c.JobMaxAttempts, 1)},
		{"shutdown-timeout", "VITRINE_SHUTDOWN_TIMEOUT", "30s", "how long shutdown waits for requests and jobs", dur(&c.ShutdownTimeout)},
		{"request-timeout", "VITRINE_REQUEST_TIMEOUT", "30s", "time limit of one HTTP request's work", dur(&c.RequestTimeout)},
		{"cache-entries", "VITRINE_CACHE_ENTRIES", "100000", "products kept rendered in the in-process cache", num(&c.CacheEntries, 1)},
		{"fetch-allow", "VITRINE_FETCH_ALLOW", "", "comma-separated addresses/CIDRs that URL imports may reach despite the SSRF guard", str(&c.FetchAllow)},
		{"pprof-addr", "VITRINE_PPROF_ADDR", "", "address of a separate net/http/pprof listener for profiling (empty: off)", str(&c.PprofAddr)},
		{"metrics", "VITRINE_METRICS", "admin", "who may read /metrics on the main port: admin (a key with the admin scope), public, or off", oneOf(&c.MetricsAccess, "admin", "public", "off")},
		{"metrics-addr", "VITRINE_METRICS_ADDR", "", "address of a separate listener serving /metrics without a key, e.g. 127.0.0.1:9464 (empty: off)", str(&c.MetricsAddr)},
		{"recipe-file", "VITRINE_RECIPE_FILE", "", "JSON recipe of the image variants (default: the built-in recipe)", str(&c.RecipeFile)},
		{"render-workers", "VITRINE_RENDER_WORKERS", "1", "files made on demand at once on each API node, apart from the image job workers (0: none made; those URLs answer 404)", num(&c.RenderWorkers, 0)},
		{"render-queue", "VITRINE_RENDER_QUEUE", "16", "files made on demand that may wait for a render worker on each API node; past it, 503 with Retry-After", num(&c.RenderQueue, 1)},
		{"render-width-step", "VITRINE_RENDER_WIDTH_STEP", "16", "on-demand widths snap up to a multiple of this (pixels)", num(&c.RenderWidthStep, 1)},
		{"render-max-width", "VITRINE_RENDER_MAX_WIDTH", "2048", "widest file made on demand (pixels, at most 16383); wider requests get 400", num(&c.RenderMaxWidth, 1)},
		{"media-signing-key", "VITRINE_MEDIA_SIGNING_KEY", "", "comma-separated hex keys (16 bytes or more each) on-demand URLs must be signed with, any one of them (a rotation lists the new and the old); empty: unsigned URLs", str(&c.MediaSigningKeys)},
		{"gc-interval", "VITRINE_GC_INTERVAL", "1h", "how often one API node sweeps orphan files, those of images that do not exist (0: never; vitrine gc sweeps by hand)", setDrain(&c.GCInterval)},
		{"gc-grace", "VITRINE_GC_GRACE", "1h", "how old an orphan file must be to be swept (longer than an upload or a job takes)", dur(&c.GCGrace)},
		{"postgres-url", "VITRINE_POSTGRES_URL", "", "PostgreSQL URL (unset: embedded SQLite)", str(&c.PostgresURL)},
		{"redis-url", "VITRINE_REDIS_URL", "", "Redis URL for the shared product cache (unset: in-process cache)", str(&c.RedisURL)},
		{"kafka-brokers", "VITRINE_KAFKA_BROKERS", "", "comma-separated Kafka brokers for image jobs (unset: the database-backed queue)", str(&c.KafkaBrokers)},
		{"kafka-topic", "VITRINE_KAFKA_TOPIC", "vitrine.image-jobs", "Kafka topic of image jobs (dead letters go to TOPIC.dead-letters)", str(&c.KafkaTopic)},
		{"kafka-partitions", "VITRINE_KAFKA_PARTITIONS", "6", "partitions of the job topic when vitrine creates it", num(&c.KafkaPartitions, 1)},
		{"kafka-replication", "VITRINE_KAFKA_REPLICATION", "1", "replication factor of the topics vitrine creates (production: 3; 1 loses jobs' messages with a broker's disk, which the outbox publishes again after kafka-redeliver)", num(&c.KafkaReplication, 1)},
		{"kafka-min-isr", "VITRINE_KAFKA_MIN_ISR", "0", "min.insync.replicas of the topics vitrine creates, at most the replication factor (production: 2; 0: the broker's default); writes are acknowledged by all in-sync replicas (acks=all)", num(&c.KafkaMinISR, 0)},
		{"kafka-redeliver", "VITRINE_KAFKA_REDELIVER", "5m", "how long a published image job may wait for a worker to claim it before it is published again (its message lost by the brokers); longer than the consumers usually lag", dur(&c.KafkaRedeliver)},
		{"s3-endpoint", "VITRINE_S3_ENDPOINT", "", "S3 endpoint URL (unset with no bucket: local files)", str(&c.S3Endpoint)},
		{"s3-bucket", "VITRINE_S3_BUCKET", "", "S3 bucket for originals and variants", str(&c.S3Bucket)},
		{"s3-region", "VITRINE_S3_REGION", "us-east-1", "S3 region", str(&c.S3Region)},
		{"s3-access-key-id", "VITRINE_S3_ACCESS_KEY_ID", "", "S3 access key (unset: the AWS default credential chain)", str(&c.S3AccessKey)},
		{"s3-secret-access-key", "VITRINE_S3_SECRET_ACCESS_KEY", "", "S3 secret key", str(&c.S3SecretKey)},
		{"s3-path-style", "VITRINE_S3_PATH_STYLE", "false", "path-style S3 addressing (most S3-compatible servers)", oneOf(&c.S3PathStyle, "true", "false")},
		// Cluster (clusterconfig.go).
		{"cluster-name", "VITRINE_CLUSTER_NAME", "vitrine", "cluster name; nodes with the same name form one cluster", str(&c.ClusterName)},
		{"cluster-provider", "VITRINE_CLUSTER_PROVIDER", "", "membership: static (VITRINE_CLUSTER_PEERS), etcd (VITRINE_ETCD_ENDPOINTS) or kubernetes; empty: static when peers are set, else one node", oneOf(&c.ClusterProvider, "", "static", "etcd", "kubernetes")},
		{"cluster-host", "VITRINE_CLUSTER_HOST", "127.0.0.1", "address the other nodes reach this node's actor endpoint at (in Kubernetes: the pod IP)", str(&c.ClusterHost)},
		{"cluster-bind", "VITRINE_CLUSTER_BIND", "", "address this node's actor endpoint listens on (default: VITRINE_CLUSTER_HOST)", str(&c.ClusterBind)},
		{"cluster-port", "VITRINE_CLUSTER_PORT", "0", "port of this node's actor endpoint (0: any free port)", num(&c.ClusterPort, 0)},
		{"cluster-peers", "VITRINE_CLUSTER_PEERS", "", "static provider: comma-separated membership endpoints host:port of every node, this one included", str(&c.ClusterPeers)},
		{"cluster-manage-port", "VITRINE_CLUSTER_MANAGE_PORT", "6330", "static provider: port of this node's membership endpoint", num(&c.ManagePort, 1)},
		{"cluster-manage-addr", "VITRINE_CLUSTER_MANAGE_ADDR", "", "static provider: address host:port of this node's membership endpoint (default: VITRINE_CLUSTER_BIND's host and VITRINE_CLUSTER_MANAGE_PORT)", str(&c.ClusterManageAddr)},
		{"etcd-endpoints", "VITRINE_ETCD_ENDPOINTS", "", "etcd provider: comma-separated etcd client endpoints host:port", str(&c.EtcdEndpoints)},
		{"cluster-tls-cert", "VITRINE_CLUSTER_TLS_CERT", "", "PEM certificate of this node for mutual TLS between nodes", str(&c.ClusterTLSCert)},
		{"cluster-tls-key", "VITRINE_CLUSTER_TLS_KEY", "", "PEM key of VITRINE_CLUSTER_TLS_CERT", str(&c.ClusterTLSKey)},
		{"cluster-tls-ca", "VITRINE_CLUSTER_TLS_CA", "", "PEM CA that signed every node's certificate", str(&c.ClusterTLSCA)},
		{"cluster-insecure", "VITRINE_CLUSTER_INSECURE", "false", "allow traffic between nodes without TLS on a non-loopback address", oneOf(&c.ClusterInsecure, "true", "false")},
		{"shutdown-drain", "VITRINE_SHUTDOWN_DRAIN", "0s", "on SIGTERM, how long readiness is false while requests are still served, before new connections are refused (a load balancer's health-check interval)", setDrain(&c.ShutdownDrain)},
	}, append(c.Access.settings(), c.Events.settings()...)...)
}

// The setters of settings: each parses a value into its field.

func setString(p *string) func(string) error { return func(v string) error { *p = v; return nil } }

func setInt(p *int, least int) func(string) error {
	return func(v string) error {
		n, err := parseSize(v)
		if err != nil || n < least {
			return fmt.Errorf("must be an integer ≥ %d, got %q", least, v)
		}
		*p = n
		return nil
	}
}

func setDuration(p *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("must be a positive duration such as 30s, got %q", v)
		}
		*p = d
		return nil
	}
}

// setDrain parses a duration that may be 0.
func setDrain(p *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("must be a duration ≥ 0 such as 5s, got %q", v)
		}
		*p = d
		return nil
	}
}

func setOneOf(p *string, allowed ...string) func(string) error {
	return func(v string) error {
		for _, a := range allowed {
			if v == a {
				*p = v
				return nil
			}
		}
		return fmt.Errorf("must be one of %s, got %q", strings.Join(allowed, ", "), v)
	}
}

// parseConfig reads flags over environment variables over defaults, and
// validates the result. An error names the flag and the variable at fault.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	var c Config
	settings := c.settings()
	fs := flag.NewFlagSet("vitrine serve", flag.ContinueOnError)
	fs.SetOutput(usage)
	for _, s := range settings {
		fs.String(s.flag, "", fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.def))
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	given := map[string]string{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })
	var errs []error
	for _, s := range settings {
		v, from := s.def, "default"
		if e := getenv(s.env); e != "" {
			v, from = e, s.env
		}
		if f, ok := given[s.flag]; ok {
			v, from = f, "--"+s.flag
		}
		if err := s.set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s (--%s / %s): %w", from, s.flag, s.env, err))
		}
	}
	if err := c.validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

func (c *Config) validate() error {
	if c.Addr == "" {
		c.Addr = ":8080"
		if c.Access.Env == envDevelopment {
			c.Addr = "127.0.0.1:8080"
		}
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		return fmt.Errorf("VITRINE_ADDR (--addr) must be host:port or :port, got %q", c.Addr)
	}
	if c.DataDir == "" {
		return fmt.Errorf("VITRINE_DATA_DIR (--data-dir) must not be empty")
	}
	if c.KafkaMinISR > c.KafkaReplication {
		return fmt.Errorf("VITRINE_KAFKA_MIN_ISR (--kafka-min-isr) %d is more than VITRINE_KAFKA_REPLICATION (--kafka-replication) %d: no write could ever be acknowledged", c.KafkaMinISR, c.KafkaReplication)
	}
	if c.PprofAddr != "" && !isLoopback(c.PprofAddr) {
		return fmt.Errorf("VITRINE_PPROF_ADDR (--pprof-addr) must be a loopback address such as 127.0.0.1:6060, got %q: "+
			"its profiles show the process's command line and memory, secrets included", c.PprofAddr)
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("VITRINE_DATA_DIR (--data-dir) %q: %w", c.DataDir, err)
	}
	c.DataDir = abs
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") && !strings.HasPrefix(c.PublicURL, "/") {
		return fmt.Errorf("VITRINE_PUBLIC_URL (--public-url) must be an http(s) URL or an absolute path, got %q", c.PublicURL)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.S3Endpoint != "" && c.S3Bucket == "" {
		c.S3Bucket = "vitrine"
	}
	if c.S3Endpoint != "" && !strings.HasPrefix(c.S3Endpoint, "http://") && !strings.HasPrefix(c.S3Endpoint, "https://") {
		return fmt.Errorf("VITRINE_S3_ENDPOINT (--s3-endpoint) must be an http(s) URL, got %q", c.S3Endpoint)
	}
	if (c.S3AccessKey == "") != (c.S3SecretKey == "") {
		return fmt.Errorf("VITRINE_S3_ACCESS_KEY_ID and VITRINE_S3_SECRET_ACCESS_KEY must be set together")
	}
	if c.PostgresURL != "" && !strings.HasPrefix(c.PostgresURL, "postgres://") && !strings.HasPrefix(c.PostgresURL, "postgresql://") {
		return fmt.Errorf("VITRINE_POSTGRES_URL (--postgres-url) must be a postgres:// URL")
	}
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		return fmt.Errorf("VITRINE_REDIS_URL (--redis-url) must be a redis:// or rediss:// URL")
	}
	if _, err := urlfetch.ParseAllow(splitList(c.FetchAllow)); err != nil {
		return fmt.Errorf("VITRINE_FETCH_ALLOW (--fetch-allow): %w", err)
	}
	if c.RenderMaxWidth > media.MaxVariantSide || c.RenderWidthStep > c.RenderMaxWidth {
		return fmt.Errorf("VITRINE_RENDER_MAX_WIDTH (--render-max-width) must be at most %d and VITRINE_RENDER_WIDTH_STEP at most it, got %d and %d",
			media.MaxVariantSide, c.RenderMaxWidth, c.RenderWidthStep)
	}
	if _, err := signingKeys(c.MediaSigningKeys); err != nil {
		return err
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	if err := c.Events.validate(); err != nil {
		return err
	}
	return c.Access.validate(c.Addr)
}

// parseSize reads an integer, optionally with a KiB, MiB or GiB suffix.
func parseSize(v string) (int, error) {
	mult := 1
	for suffix, m := range map[string]int{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(v, suffix) {
			v, mult = strings.TrimSuffix(v, suffix), m
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, err
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("too large")
	}
	return n * mult, nil
}

// splitList splits a comma-separated setting, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// maskURL hides the password of a URL.
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		// A PostgreSQL keyword DSN: host=… password=… (quoted or not).
		return keywordPassword.ReplaceAllString(raw, "${1}xxxxx")
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if q := u.Query(); len(q) > 0 {
		masked := false
		for k := range q {
			if secretParam(k) {
				q.Set(k, "xxxxx")
				masked = true
			}
		}
		if masked {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

// keywordPassword matches the password of a keyword DSN.
var keywordPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// secretParam reports whether a query parameter's name says it holds a
// secret (password=, sslpassword=, token=, secret=, key=…).
func secretParam(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"password", "passwd", "token", "secret", "key", "signature", "sig"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return "xxxxx"
}

// fields lists the configuration for the start-up log line, secrets masked.
func (c Config) fields() map[string]any {
	return map[string]any{
		"fetch_allow": c.FetchAllow, "recipe_file": c.RecipeFile, "render_workers": c.RenderWorkers, "render_queue": c.RenderQueue,
		"render_width_step": c.RenderWidthStep, "render_max_width": c.RenderMaxWidth, "media_signing_key": mask(c.MediaSigningKeys), "pprof_addr": c.PprofAddr, "metrics": c.MetricsAccess, "metrics_addr": c.MetricsAddr,
		"postgres_url": maskURL(c.PostgresURL), "redis_url": maskURL(c.RedisURL),
		"kafka_brokers": c.KafkaBrokers, "kafka_topic": c.KafkaTopic, "kafka_partitions": c.KafkaPartitions, "kafka_replication": c.KafkaReplication, "kafka_min_isr": c.KafkaMinISR, "kafka_redeliver": c.KafkaRedeliver.String(),
		"s3_endpoint": c.S3Endpoint, "s3_bucket": c.S3Bucket, "s3_region": c.S3Region,
		"s3_access_key_id": c.S3AccessKey, "s3_secret_access_key": mask(c.S3SecretKey), "s3_path_style": c.S3PathStyle,
		"addr": c.Addr, "data_dir": c.DataDir, "public_url": c.PublicURL, "role": c.Role,
		"log_format": c.LogFormat, "log_level": c.LogLevel, "max_upload_bytes": c.MaxUploadBytes,
		"import_max_bytes": c.MaxImportBytes, "import_max_rows": c.MaxImportRows, "import_lease": c.ImportLease.String(),
		"max_pixels": c.MaxPixels, "max_frames": c.MaxFrames, "workers": c.Workers,
		"job_timeout": c.JobTimeout.String(), "job_max_attempts": c.JobMaxAttempts,
		"shutdown_timeout": c.ShutdownTimeout.String(), "request_timeout": c.RequestTimeout.String(),
		"cache_entries": c.CacheEntries, "cluster_name": c.ClusterName, "cluster_provider": c.ClusterProvider,
		"cluster_host": c.ClusterHost, "cluster_bind": c.ClusterBind, "cluster_port": c.ClusterPort,
		"cluster_peers": c.ClusterPeers, "cluster_manage_addr": c.ClusterManageAddr, "etcd_endpoints": c.EtcdEndpoints,
		"cluster_tls_cert": c.ClusterTLSCert, "cluster_tls_ca": c.ClusterTLSCA, "cluster_insecure": c.ClusterInsecure,
		"shutdown_drain": c.ShutdownDrain.String(), "gc_interval": c.GCInterval.String(), "gc_grace": c.GCGrace.String(),
		"access": c.Access.fields(), "events": c.Events.fields(),
	}
}

// signingKeys decodes VITRINE_MEDIA_SIGNING_KEY: comma-separated hex keys
// of 16 bytes or more.
func signingKeys(list string) ([][]byte, error) {
	var keys [][]byte
	for _, k := range splitList(list) {
		b, err := hex.DecodeString(k)
		if err != nil || len(b) < 16 {
			return nil, fmt.Errorf("VITRINE_MEDIA_SIGNING_KEY (--media-signing-key) must list hex keys of 16 bytes (32 hex digits) or more; make one with: openssl rand -hex 32")
		}
		keys = append(keys, b)
	}
	return keys, nil
}
