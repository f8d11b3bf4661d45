package baseline

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestImgproxyPath(t *testing.T) {
	for _, c := range []struct {
		file                   string
		width, height, q, bust int
		want                   string
	}{
		{"large-photo.jpg", 800, 800, 80, 0, "/insecure/rs:fit:800:800/q:80/plain/local:///large-photo.jpg@webp"},
		{"/large-photo.jpg", 320, 0, 80, 7, "/insecure/rs:fit:320:0/q:80/cb:7/plain/local:///large-photo.jpg@webp"},
	} {
		if got := ImgproxyPath(c.file, c.width, c.height, c.q, c.bust); got != c.want {
			t.Errorf("ImgproxyPath(%q, %d, %d, %d, %d) = %s, want %s", c.file, c.width, c.height, c.q, c.bust, got, c.want)
		}
	}
}

func TestImgproxyEnv(t *testing.T) {
	env := ImgproxyEnv(ImgproxyOptions{Port: 1234, Root: "/tmp/x", Workers: 2, Quality: 80})
	for _, want := range []string{"IMGPROXY_BIND=127.0.0.1:1234", "IMGPROXY_LOCAL_FILESYSTEM_ROOT=/tmp/x", "IMGPROXY_WORKERS=2",
		"IMGPROXY_QUALITY=80", "IMGPROXY_FORMAT_QUALITY=webp=80", "IMGPROXY_STRIP_METADATA=true", "IMGPROXY_STRIP_COLOR_PROFILE=true"} {
		if !slices.Contains(env, want) {
			t.Errorf("no %s in %v", want, env)
		}
	}
}

// scripts/imgproxy builds the release the bench reports.
func TestImgproxyVersionMatchesScript(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "scripts", "imgproxy"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nVERSION="+ImgproxyVersion+"\n") {
		t.Errorf("scripts/imgproxy does not build %s", ImgproxyVersion)
	}
}
