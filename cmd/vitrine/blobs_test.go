//go:build !integration

package main

import "testing"

// Without the integration tag files always live in the local directory.
type blobReader struct{}

func openBlobs(testing.TB, Config) *blobReader { return nil }

func (a *testApp) storedBlob(string) []byte { panic("no S3 without the integration tag") }

func (a *testApp) putBlob(string, []byte) { panic("no S3 without the integration tag") }

func (a *testApp) anonymousBucketGet(string) int { panic("no S3 without the integration tag") }

func (a *testApp) countBlobs(string) int { panic("no S3 without the integration tag") }
