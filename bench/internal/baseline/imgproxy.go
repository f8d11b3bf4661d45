package baseline

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/target"
)

// ImgproxyVersion is the release scripts/imgproxy builds (keep the two in
// step).
const ImgproxyVersion = "v3.31.4"

// BuildImgproxy runs scripts/imgproxy of the repository at root, which
// builds imgproxy from its public source at the pinned release once (into
// ~/.cache/vitrine-tools) and prints the binary's path. The error carries
// the script's reason when it cannot build.
func BuildImgproxy(ctx context.Context, root string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "imgproxy")) // #nosec G204 -- the repository's own script
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndex(msg, "\n"); i >= 0 {
			msg = msg[i+1:]
		}
		return "", fmt.Errorf("scripts/imgproxy: %w: %s", err, msg)
	}
	bin := strings.TrimSpace(string(out))
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return "", fmt.Errorf("scripts/imgproxy printed %q, not a binary", bin)
	}
	return bin, nil
}

// Imgproxy is a running imgproxy serving the files of one directory.
type Imgproxy struct {
	Addr   string // 127.0.0.1:port
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// ImgproxyOptions are how the bench runs imgproxy.
type ImgproxyOptions struct {
	Bin     string
	Port    int
	Root    string // IMGPROXY_LOCAL_FILESYSTEM_ROOT: the photos it serves
	Workers int    // IMGPROXY_WORKERS: images processed at once
	Quality int    // IMGPROXY_QUALITY
	LogPath string
	Env     []string // more variables (VIPS_INFO=1…)
}

// ImgproxyEnv is the environment imgproxy runs with: loopback only,
// unsigned URLs (no IMGPROXY_KEY or _SALT), local files under root, the
// workers and quality given, and its defaults otherwise (metadata stripped,
// colour converted to sRGB and the profile dropped, WebP effort 4, libvips
// cache off and one libvips thread an operation).
func ImgproxyEnv(o ImgproxyOptions) []string {
	return []string{
		fmt.Sprintf("IMGPROXY_BIND=127.0.0.1:%d", o.Port),
		"IMGPROXY_LOCAL_FILESYSTEM_ROOT=" + o.Root,
		fmt.Sprintf("IMGPROXY_WORKERS=%d", o.Workers),
		fmt.Sprintf("IMGPROXY_QUALITY=%d", o.Quality),
		fmt.Sprintf("IMGPROXY_FORMAT_QUALITY=webp=%d", o.Quality),
		"IMGPROXY_STRIP_METADATA=true", "IMGPROXY_STRIP_COLOR_PROFILE=true",
		"IMGPROXY_LOG_LEVEL=warn",
		"IMGPROXY_MAX_SRC_RESOLUTION=100", // megapixels: the full profile's photo is 19.6
	}
}

// StartImgproxy starts imgproxy and waits until /health answers 200.
func StartImgproxy(ctx context.Context, o ImgproxyOptions) (*Imgproxy, error) {
	logf, err := os.OpenFile(o.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) // #nosec G304 -- in the bench's temporary directory
	if err != nil {
		return nil, err
	}
	defer logf.Close()                                                                                //nolint:errcheck // the child has its own descriptor
	cmd := exec.Command(o.Bin)                                                                        // #nosec G204 -- the imgproxy scripts/imgproxy built or -imgproxy named
	cmd.Env = append(append(os.Environ(), "MALLOC_ARENA_MAX=2"), append(ImgproxyEnv(o), o.Env...)...) // as vitrine runs
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start imgproxy: %w", err)
	}
	p := &Imgproxy{Addr: "127.0.0.1:" + strconv.Itoa(o.Port), cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("imgproxy exited before it was ready (%w): %s", p.err, tail(o.LogPath))
		case <-ctx.Done():
			_ = p.Stop()
			return nil, ctx.Err()
		default:
		}
		if res, err := c.Get(p.URL() + "/health"); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			_ = p.Stop()
			return nil, fmt.Errorf("imgproxy not ready at %s after 30 s: %s", p.URL(), tail(o.LogPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path) // #nosec G304 -- the log the bench writes
	s := strings.TrimSpace(string(b))
	if len(s) > 500 {
		s = s[len(s)-500:]
	}
	return s
}

// URL is imgproxy's base URL.
func (p *Imgproxy) URL() string { return "http://" + p.Addr }

// Pid is imgproxy's process id.
func (p *Imgproxy) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM and waits (SIGKILL after 10 s).
func (p *Imgproxy) Stop() error {
	return target.Terminate(p.cmd, p.exited, func() error { return p.err }, 10*time.Second)
}

// ImgproxyPath is the unsigned imgproxy path that fits file (relative to
// the local root) into a width×height box (height 0: width pixels wide),
// never enlarged (rs:fit:W:H), as a WebP at quality; bust > 0 adds a cache
// buster (cb:N), which changes the URL and nothing of the work, so that no
// cache in between can answer.
func ImgproxyPath(file string, width, height, quality, bust int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "/insecure/rs:fit:%d:%d/q:%d", width, height, quality)
	if bust > 0 {
		fmt.Fprintf(&b, "/cb:%d", bust)
	}
	b.WriteString("/plain/local:///")
	b.WriteString(strings.TrimLeft(file, "/"))
	b.WriteString("@webp")
	return b.String()
}
