package main

import (
	"io"
	"reflect"
	"testing"
)

func TestClusterNodeLines(t *testing.T) {
	got := urls("node 1 pid 10 url http://127.0.0.1:19001\nnoise\nnode 2 pid 11 url http://127.0.0.1:19002\n")
	want := []string{"http://127.0.0.1:19001", "http://127.0.0.1:19002"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestClusterFlag(t *testing.T) {
	env := func(string) string { return "" }
	if o, err := parseFlags([]string{"-cluster", "3"}, env, io.Discard); err != nil || o.cluster != 3 {
		t.Fatalf("-cluster 3: %+v %v", o.cluster, err)
	}
	for _, args := range [][]string{{"-cluster", "-1"}, {"-cluster", "2", "-url", "http://x:1"}, {"-cluster", "2", "-vitrine", "bin/vitrine"}} {
		if _, err := parseFlags(args, env, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
