//go:build integration

package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/s3"
)

// requireEnv returns a variable that make test sets through scripts/services.
func requireEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf(`%s is not set: run eval "$(scripts/services up)" first (make test does)`, name)
	}
	return v
}

// backendEnv points a vitrine at every real server, isolated from other
// tests: its own PostgreSQL schema, Kafka topic and S3 bucket.
func backendEnv(t testing.TB) map[string]string {
	t.Helper()
	suffix := fmt.Sprintf("%x", rand.Uint64())
	pgURL := requireEnv(t, "VITRINE_POSTGRES_URL")
	schema := "t_" + suffix
	conn, err := pgx.Connect(context.Background(), pgURL)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	if _, err := conn.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), pgURL)
		if err == nil {
			if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
				t.Logf("drop schema %s: %v", schema, err)
			}
			conn.Close(context.Background())
		}
	})
	sep := "?"
	if strings.Contains(pgURL, "?") {
		sep = "&"
	}
	return map[string]string{
		"VITRINE_POSTGRES_URL":         pgURL + sep + "search_path=" + schema,
		"VITRINE_REDIS_URL":            requireEnv(t, "VITRINE_REDIS_URL"),
		"VITRINE_KAFKA_BROKERS":        requireEnv(t, "VITRINE_KAFKA_BROKERS"),
		"VITRINE_KAFKA_TOPIC":          "vitrine-test-" + suffix,
		"VITRINE_KAFKA_PARTITIONS":     "3",
		"VITRINE_S3_ENDPOINT":          requireEnv(t, "VITRINE_S3_ENDPOINT"),
		"VITRINE_S3_BUCKET":            "vitrine-test-" + suffix,
		"VITRINE_S3_REGION":            requireEnv(t, "VITRINE_S3_REGION"),
		"VITRINE_S3_ACCESS_KEY_ID":     requireEnv(t, "VITRINE_S3_ACCESS_KEY_ID"),
		"VITRINE_S3_SECRET_ACCESS_KEY": requireEnv(t, "VITRINE_S3_SECRET_ACCESS_KEY"),
		"VITRINE_S3_PATH_STYLE":        "true",
	}
}

type blobReader struct {
	store  *s3.Store
	client *awss3.Client
	bucket string
}

func openBlobs(t testing.TB, cfg Config) *blobReader {
	t.Helper()
	if cfg.S3Bucket == "" {
		return nil
	}
	sc := s3.Config{Endpoint: cfg.S3Endpoint, Region: cfg.S3Region, Bucket: cfg.S3Bucket, AccessKeyID: cfg.S3AccessKey,
		SecretAccessKey: cfg.S3SecretKey, PathStyle: true}
	st, err := s3.New(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	client := awss3.New(awss3.Options{Region: cfg.S3Region, BaseEndpoint: aws.String(cfg.S3Endpoint), UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: cfg.S3AccessKey, SecretAccessKey: cfg.S3SecretKey}, nil
		})})
	return &blobReader{store: st, client: client, bucket: cfg.S3Bucket}
}

// putBlob writes a blob straight into the bucket.
func (a *testApp) putBlob(key string, data []byte) {
	a.t.Helper()
	if err := a.blobs.store.Put(context.Background(), key, data, "image/webp"); err != nil {
		a.t.Fatalf("put %s into the bucket: %v", key, err)
	}
}

// storedBlob reads a blob straight from the bucket.
func (a *testApp) storedBlob(key string) []byte {
	a.t.Helper()
	data, err := a.blobs.store.Get(context.Background(), key)
	if err != nil {
		a.t.Fatalf("get %s from the bucket: %v", key, err)
	}
	return data
}

// anonymousBucketGet asks the S3 endpoint for an object without
// credentials and returns the status: the bucket is private.
func (a *testApp) anonymousBucketGet(key string) int {
	a.t.Helper()
	res, err := http.Get(strings.TrimRight(a.cfg.S3Endpoint, "/") + "/" + a.blobs.bucket + "/" + key)
	if err != nil {
		a.t.Fatalf("anonymous GET of %s at the S3 endpoint: %v", key, err)
	}
	res.Body.Close()
	return res.StatusCode
}

func (a *testApp) countBlobs(productID string) int {
	a.t.Helper()
	prefix := catalog.ProductPrefix(productID)
	out, err := a.blobs.client.ListObjectsV2(context.Background(), &awss3.ListObjectsV2Input{Bucket: &a.blobs.bucket, Prefix: &prefix})
	if err != nil {
		a.t.Fatal(err)
	}
	return int(aws.ToInt32(out.KeyCount))
}

// The walking-skeleton scenarios again, with every real backend on.
func TestRealBackendsProducts(t *testing.T)    { testProducts(t, backendEnv(t)) }
func TestRealBackendsList(t *testing.T)        { testList(t, backendEnv(t)) }
func TestRealBackendsImages(t *testing.T)      { testImages(t, backendEnv(t)) }
func TestRealBackendsRestart(t *testing.T)     { testRestart(t, backendEnv(t)) }
func TestRealBackendsBadInput(t *testing.T)    { testBadInput(t, backendEnv(t)) }
func TestRealBackendsDeleteRaces(t *testing.T) { testDeleteRaces(t, backendEnv(t)) }
func TestRealBackendsGC(t *testing.T)          { testGC(t, backendEnv(t)) }
func TestRealBackendsGallery(t *testing.T)     { testGallery(t, backendEnv(t)) }
func TestRealBackendsImport(t *testing.T)      { testImport(t, backendEnv(t)) }
func TestRealBackendsDeleteImageWhileProcessing(t *testing.T) {
	testDeleteImageWhileProcessing(t, backendEnv(t))
}

// TestKafkaDown: uploads answered while Kafka is down are all processed,
// once each, when it returns.
func TestKafkaDown(t *testing.T) {
	own := startOwnServices(t, "kafka") // stopped below: never the shared one
	env := with(backendEnv(t), "VITRINE_KAFKA_BROKERS", own.vars["VITRINE_KAFKA_BROKERS"])
	app := startApp(t, t.TempDir(), env)
	p := app.createProduct(`{"name":"Broker outage","price":"1","user_id":1}`)
	id := p["id"].(string)

	own.run("down", "kafka")
	var locations []string
	for i := 0; i < 20; i++ {
		r := app.uploadBytes(id, fmt.Sprintf("%d.png", i), distinctPNG(t, i), true)
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload %d with Kafka down: %d %s", i, r.Status, r.Body)
		}
		locations = append(locations, r.Header.Get("Location"))
	}
	time.Sleep(time.Second)
	if img := app.do("GET", locations[0], nil).json(t); img["status"] != "pending" {
		t.Errorf("with Kafka down the image is %v, want pending", img["status"])
	}
	own.run("up", "kafka")
	for i, loc := range locations {
		img := app.waitImage(loc, 3*time.Minute)
		if img["status"] != "ready" {
			t.Fatalf("image %d: %v", i, img)
		}
		seen := map[string]bool{}
		for _, v := range img["variants"].([]any) {
			v := v.(map[string]any)
			k := v["name"].(string) + "." + v["format"].(string)
			if seen[k] {
				t.Errorf("image %d has %s twice", i, k)
			}
			seen[k] = true
		}
	}
	// Every image's files: its variants and its original, nothing twice.
	perImage := len(app.waitImage(locations[0], time.Second)["variants"].([]any)) + 1
	if n := app.storedFiles(id); n != perImage*len(locations) {
		t.Errorf("%d files stored, want %d (%d per image)", n, perImage*len(locations), perImage)
	}
}

// TestWorkerKilledMidJob: jobs of a worker process killed with SIGKILL are
// delivered again, once their claims run out, and processed by another
// worker.
func TestWorkerKilledMidJob(t *testing.T) {
	env := backendEnv(t)
	bin := buildBinary(t)
	// One cluster: the API node and the two workers that will take turns.
	var manage []string
	for i := 0; i < 3; i++ {
		_, port, _ := strings.Cut(freePort(t), ":")
		manage = append(manage, port)
	}
	peers := "127.0.0.1:" + strings.Join(manage, ",127.0.0.1:")
	env = with(env, "VITRINE_CLUSTER_PEERS", peers)
	api := startApp(t, t.TempDir(), with(env, "VITRINE_ROLE", "api", "VITRINE_CLUSTER_MANAGE_PORT", manage[0]))
	workers := 0
	startWorker := func() (*exec.Cmd, *bytes.Buffer) {
		workers++
		cmd := exec.Command(bin, "serve")
		cmd.Env = os.Environ()
		// The killed worker's job runs again once its claim runs out: the
		// time limit and 30 s.
		for k, v := range with(env, "VITRINE_ROLE", "worker", "VITRINE_WORKERS", "1", "VITRINE_DATA_DIR", t.TempDir(), "VITRINE_LOG_FORMAT", "json", "VITRINE_JOB_TIMEOUT", "20s",
			"VITRINE_CLUSTER_MANAGE_PORT", manage[workers]) {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var logs bytes.Buffer
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, &logs
	}
	// Enough work that one worker is busy for a while: the large photos,
	// on three products (the same bytes on one product are one image).
	photos := []string{"photo_pixel6pro_ultrahdr_p3.jpg", "photo_iphonex_p3_orient6_gps.jpg", "photo_mate_wood.jpg", "photo_mate_twowings.jpg", "photo_adobergb_2000x1072.jpg", "progressive_mate_freshflower.jpg"}
	var locations []string
	for i := 0; i < 3; i++ {
		p := api.createProduct(`{"name":"Worker crash","price":"1","user_id":1}`)
		for _, f := range photos {
			r := api.uploadFile(p["id"].(string), filepath.Join(corpusDir(t), f), true)
			if r.Status != http.StatusAccepted {
				t.Fatalf("upload %s: %d %s", f, r.Status, r.Body)
			}
			locations = append(locations, r.Header.Get("Location"))
		}
	}
	first, firstLogs := startWorker()
	// Kill it while it holds a job.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		busy := false
		for _, loc := range locations {
			if api.do("GET", loc, nil).json(t)["status"] == "processing" {
				busy = true
			}
		}
		if busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker never started a job:\n%s", firstLogs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	_, logs := startWorker()
	for _, loc := range locations {
		img := api.waitImage(loc, 4*time.Minute)
		if img["status"] != "ready" {
			t.Fatalf("%s: %v\nsecond worker:\n%s", loc, img, logs.String())
		}
	}
	// The job the first worker died holding was delivered again: its
	// second attempt was counted before it ran.
	if !strings.Contains(logs.String(), `"attempt":2`) {
		t.Errorf("no job was redelivered to the second worker:\n%s", logs.String())
	}
}

// TestRedisDown: reads and writes go on without Redis; once it is back, a
// change made on one node is seen on the other node's next read.
func TestRedisDown(t *testing.T) {
	own := startOwnServices(t, "redis") // stopped below: never the shared one
	env := with(backendEnv(t), "VITRINE_REDIS_URL", own.vars["VITRINE_REDIS_URL"])
	p1, p2 := freePort(t), freePort(t)
	_, m1, _ := strings.Cut(p1, ":")
	_, m2, _ := strings.Cut(p2, ":")
	peers := "127.0.0.1:" + m1 + ",127.0.0.1:" + m2
	a := startApp(t, t.TempDir(), with(env, "VITRINE_CLUSTER_PEERS", peers, "VITRINE_CLUSTER_MANAGE_PORT", m1))
	b := startApp(t, t.TempDir(), with(env, "VITRINE_CLUSTER_PEERS", peers, "VITRINE_CLUSTER_MANAGE_PORT", m2))
	p := a.createProduct(`{"name":"Cached","price":"10","user_id":1}`)
	id := p["id"].(string)
	if r := b.do("GET", "/products/"+id, nil); r.Status != http.StatusOK {
		t.Fatalf("read on b: %d %s", r.Status, r.Body)
	}

	own.run("down", "redis")
	for _, node := range []*testApp{a, b} {
		r := node.do("GET", "/products/"+id, nil)
		if r.Status != http.StatusOK || r.json(t)["price"] != "10.00" {
			t.Fatalf("read with Redis down: %d %s", r.Status, r.Body)
		}
	}
	r := a.do("PATCH", "/products/"+id, strings.NewReader(`{"price":"11"}`), "Content-Type", "application/merge-patch+json")
	if r.Status != http.StatusOK {
		t.Fatalf("write with Redis down: %d %s", r.Status, r.Body)
	}
	if r := b.do("GET", "/products/"+id, nil); r.json(t)["price"] != "11.00" {
		t.Fatalf("b reads %s after a's write with Redis down", r.Body)
	}

	own.run("up", "redis")
	time.Sleep(3 * time.Second) // past the breaker's cooldown
	for i := 0; i < 3; i++ {
		b.do("GET", "/products/"+id, nil) // b caches again
	}
	r = a.do("PATCH", "/products/"+id, strings.NewReader(`{"price":"12"}`), "Content-Type", "application/merge-patch+json")
	if r.Status != http.StatusOK {
		t.Fatalf("write after Redis returned: %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := b.do("GET", "/products/"+id, nil).json(t)["price"]
		if got == "12.00" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b still reads price %v after a's write", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPostgresDown: requests that need the database answer 503 with
// Retry-After, quickly, and the service recovers by itself.
func TestPostgresDown(t *testing.T) {
	own := startOwnServices(t, "postgres") // stopped below: never the shared one
	env := with(backendEnv(t), "VITRINE_POSTGRES_URL", own.vars["VITRINE_POSTGRES_URL"])
	app := startApp(t, t.TempDir(), env)
	p := app.createProduct(`{"name":"Before","price":"1","user_id":1}`)

	own.run("down", "postgres")
	r := app.doJSON("POST", "/products", `{"name":"During","price":"1","user_id":1}`)
	expectProblem(t, r, http.StatusServiceUnavailable, "create with PostgreSQL down")
	if r.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	expectProblem(t, app.do("GET", "/products?limit=5", nil), http.StatusServiceUnavailable, "list with PostgreSQL down")
	// Readiness is judged in the background: it turns within 5 s (the
	// results' bound) plus a run of the checks (2 s at most).
	for deadline := time.Now().Add(8 * time.Second); app.do("GET", "/readyz", nil).Status == http.StatusOK && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	expectProblem(t, app.do("GET", "/readyz", nil), http.StatusServiceUnavailable, "readyz with PostgreSQL down")
	if r := app.do("GET", "/healthz", nil); r.Status != http.StatusOK {
		t.Errorf("healthz with PostgreSQL down: %d", r.Status)
	}
	// A product already rendered is still served.
	if r := app.do("GET", "/products/"+p["id"].(string), nil); r.Status != http.StatusOK {
		t.Errorf("cached read with PostgreSQL down: %d", r.Status)
	}

	own.run("up", "postgres")
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := app.doJSON("POST", "/products", `{"name":"After","price":"1","user_id":1}`)
		if r.Status == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not recovered 60 s after PostgreSQL returned: %d %s", r.Status, r.Body)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestRelayThreeNodes: three API nodes relay one outbox; 200 uploads, spread
// over them, are published exactly 200 times, counted on the topic.
func TestRelayThreeNodes(t *testing.T) {
	const uploads = 200
	env := backendEnv(t)
	var manage []string
	for range 3 {
		_, port, _ := strings.Cut(freePort(t), ":")
		manage = append(manage, port)
	}
	env = with(env, "VITRINE_CLUSTER_PEERS", "127.0.0.1:"+strings.Join(manage, ",127.0.0.1:"), "VITRINE_WORKERS", "1")
	var nodes []*testApp
	for _, m := range manage {
		nodes = append(nodes, startApp(t, t.TempDir(), with(env, "VITRINE_CLUSTER_MANAGE_PORT", m)))
	}
	var locations []string
	var product string
	for i := range uploads {
		node := nodes[i%3]
		if i%50 == 0 {
			product = node.createProduct(`{"name":"Relayed","price":"1","user_id":1}`)["id"].(string)
		}
		r := node.uploadBytes(product, "x.png", distinctPNG(t, 1000+i), true)
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload %d: %d %s", i, r.Status, r.Body)
		}
		locations = append(locations, r.Header.Get("Location"))
	}
	for _, loc := range locations {
		if img := nodes[0].waitImage(loc, 3*time.Minute); img["status"] != "ready" {
			t.Fatalf("%s: %v", loc, img)
		}
	}
	time.Sleep(time.Second) // a duplicate publish would show by now
	topic := env["VITRINE_KAFKA_TOPIC"]
	published := 0
	for p := range 3 {
		conn, err := kafkago.DialLeader(context.Background(), "tcp", strings.Split(env["VITRINE_KAFKA_BROKERS"], ",")[0], topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		published += int(last)
	}
	if published != uploads {
		t.Fatalf("%d uploads over three API nodes were published %d times, want exactly once each", uploads, published)
	}
	t.Logf("%d uploads over three API nodes: %d messages on %s", uploads, published, topic)
}

// TestRealBackendsMediaProxy: /media streams S3 objects with the HTTP
// semantics of a file server: ETag and Last-Modified, ranges, conditional
// requests, HEAD.
func TestRealBackendsMediaProxy(t *testing.T) {
	app := startApp(t, t.TempDir(), backendEnv(t))
	p := app.createProduct(`{"name":"Proxied","price":"1","user_id":1}`)
	r := app.uploadFile(p["id"].(string), filepath.Join(corpusDir(t), "photo_mate_wood.jpg"), true)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	img := app.waitImage(r.Header.Get("Location"), 2*time.Minute)
	checkMediaSemantics(t, app, img["variants"].([]any)[0].(map[string]any)["url"].(string))
	checkNegotiation(t, app, img)
}

// TestTracingFollowsAnUploadThroughKafka: the upload's trace crosses the
// outbox, the relay and Kafka (a traceparent header) to a worker node, whose
// status update crosses back to the API node's grain, on PostgreSQL, Redis,
// Kafka and S3. Each node has its own tracer provider, as two processes do.
func TestTracingFollowsAnUploadThroughKafka(t *testing.T) {
	env := backendEnv(t)
	_, apiPort, _ := strings.Cut(freePort(t), ":")
	_, workerPort, _ := strings.Cut(freePort(t), ":")
	env = with(env, "VITRINE_CLUSTER_PEERS", "127.0.0.1:"+apiPort+",127.0.0.1:"+workerPort)
	apiRec, apiTP := spanRecorder()
	workerRec, workerTP := spanRecorder()
	api := startAppWith(t, t.TempDir(), with(env, "VITRINE_ROLE", "api", "VITRINE_CLUSTER_MANAGE_PORT", apiPort), zap.NewNop(), apiTP)
	startAppWith(t, t.TempDir(), with(env, "VITRINE_ROLE", "worker", "VITRINE_CLUSTER_MANAGE_PORT", workerPort), zap.NewNop(), workerTP)
	checkUploadTrace(t, api, apiRec, workerRec)
	if len(ofTrace(workerRec.Ended(), "4bf92f3577b34da6a3ce929d0e0e4736")) == 0 {
		t.Error("the worker node recorded no span of the upload's trace: the job ran on the API node")
	}
}
