package main

import (
	"strings"
	"testing"
)

// TestConfigRefusesUnsafe: settings that would open what should stay shut
// stop the start with a message naming them.
func TestConfigRefusesUnsafe(t *testing.T) {
	get := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for name, tt := range map[string]struct {
		env  map[string]string
		want string // "" for accepted
	}{
		"pprof on every interface":     {map[string]string{"VITRINE_PPROF_ADDR": ":6060"}, "VITRINE_PPROF_ADDR"},
		"pprof on a public address":    {map[string]string{"VITRINE_PPROF_ADDR": "0.0.0.0:6060"}, "VITRINE_PPROF_ADDR"},
		"pprof on loopback":            {map[string]string{"VITRINE_PPROF_ADDR": "127.0.0.1:6060"}, ""},
		"pprof on IPv6 loopback":       {map[string]string{"VITRINE_PPROF_ADDR": "[::1]:6060"}, ""},
		"open writes, private reads":   {map[string]string{"VITRINE_ANONYMOUS_WRITES": "true", "VITRINE_PUBLIC_READS": "false"}, "VITRINE_PUBLIC_READS=false"},
		"open writes, public reads":    {map[string]string{"VITRINE_ANONYMOUS_WRITES": "true"}, ""},
		"closed writes, private reads": {map[string]string{"VITRINE_PUBLIC_READS": "false"}, ""},
	} {
		_, err := parseConfig(nil, get(tt.env), nilWriter{})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: refused: %v", name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want a refusal naming %s", name, err, tt.want)
		}
	}
}

// TestMaskURL: secrets never reach the start-up log line, in any of the
// forms a DSN or a webhook URL carries them.
func TestMaskURL(t *testing.T) {
	for raw, want := range map[string]string{
		"postgres://vitrine:s3cret@db:5432/vitrine?sslmode=disable":     "postgres://vitrine:xxxxx@db:5432/vitrine?sslmode=disable",
		"postgres://vitrine@db/vitrine?password=s3cret&sslmode=require": "postgres://vitrine@db/vitrine?password=xxxxx&sslmode=require",
		"host=db user=vitrine password=s3cret dbname=vitrine":           "host=db user=vitrine password=xxxxx dbname=vitrine",
		"host=db password = 's3 cret\\'x' dbname=vitrine":               "host=db password = xxxxx dbname=vitrine",
		"redis://:s3cret@cache:6379/0":                                  "redis://:xxxxx@cache:6379/0",
		"https://hooks.example/in?token=s3cret&team=shop":               "https://hooks.example/in?team=shop&token=xxxxx",
		"https://user:s3cret@hooks.example/in":                          "https://user:xxxxx@hooks.example/in",
		"https://hooks.example/in":                                      "https://hooks.example/in",
	} {
		if got := maskURL(raw); got != want || strings.Contains(got, "s3cret") || strings.Contains(got, "s3 cret") {
			t.Errorf("maskURL(%q) = %q, want %q", raw, got, want)
		}
	}
	if got := maskURLs("https://a.example/x?secret=s3cret, https://b.example/y"); strings.Contains(got, "s3cret") || !strings.Contains(got, "b.example") {
		t.Errorf("maskURLs = %q", got)
	}
}

// TestKafkaReplicationSettings: the topics' replication settings are
// refused when no write could be acknowledged with them.
func TestKafkaReplicationSettings(t *testing.T) {
	get := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for name, tt := range map[string]struct {
		env     map[string]string
		want    string // "" for accepted
		rf, isr int
	}{
		"defaults":               {map[string]string{}, "", 1, 0},
		"production":             {map[string]string{"VITRINE_KAFKA_REPLICATION": "3", "VITRINE_KAFKA_MIN_ISR": "2"}, "", 3, 2},
		"no replica":             {map[string]string{"VITRINE_KAFKA_REPLICATION": "0"}, "VITRINE_KAFKA_REPLICATION", 0, 0},
		"negative min ISR":       {map[string]string{"VITRINE_KAFKA_MIN_ISR": "-1"}, "VITRINE_KAFKA_MIN_ISR", 0, 0},
		"min ISR over replicas":  {map[string]string{"VITRINE_KAFKA_REPLICATION": "2", "VITRINE_KAFKA_MIN_ISR": "3"}, "VITRINE_KAFKA_MIN_ISR", 0, 0},
		"min ISR without number": {map[string]string{"VITRINE_KAFKA_MIN_ISR": "two"}, "VITRINE_KAFKA_MIN_ISR", 0, 0},
	} {
		c, err := parseConfig(nil, get(tt.env), nilWriter{})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: refused: %v", name, err)
		case tt.want == "" && (c.KafkaReplication != tt.rf || c.KafkaMinISR != tt.isr):
			t.Errorf("%s: replication %d, min ISR %d, want %d, %d", name, c.KafkaReplication, c.KafkaMinISR, tt.rf, tt.isr)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want a refusal naming %s", name, err, tt.want)
		}
	}
}
