package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/vitrine-dev/vitrine/transport/webhook"
)

// command is one subcommand of vitrine.
type command struct {
	name, args string
	brief      string // one line for vitrine --help
	summary    string
	// details is the help's text after its usage line.
	details func() string
	run     func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

func (c command) help() string {
	return "Usage: vitrine " + c.name + " " + c.args + "\n\n" + c.summary + "\n\n" + c.details()
}

func commands() []command {
	sameAsServe := func() string {
		return "It reads the configuration as vitrine serve does (flags, then VITRINE_* variables):\n" +
			"vitrine serve --help lists every setting.\n"
	}
	return []command{
		{"serve", "[flags]", "run the service (API, admin page, actors, image workers)", "Runs the service: the HTTP API, the admin page at /admin/, the product actors and the image workers.",
			func() string {
				return "Flags override VITRINE_* environment variables, which override the defaults.\n" +
					"Without the production backends' variables, everything is embedded under VITRINE_DATA_DIR.\n\nSettings:\n" + settingsHelp()
			}, serve},
		{"migrate", "[flags]", "apply the database migrations and exit", "Applies the database's schema migrations (SQLite under VITRINE_DATA_DIR, or VITRINE_POSTGRES_URL), with a progress bar, and exits.\nvitrine serve applies them at start too; run this as a step of a deployment.",
			sameAsServe, migrate},
		{"doctor", "[flags]", "check the configuration and every backend, and say how to fix what is wrong", "Checks the configuration and every backend it names (database, Redis, Kafka, S3, etcd, webhooks, libvips),\nprints what is wrong and how to fix it, and exits 1 when something would stop vitrine serve. It makes no bucket, topic or PostgreSQL migration.",
			sameAsServe, doctor},
		{"keys", "create|list|revoke", "manage API keys", "Makes, lists and revokes API keys, straight on the database (no server needed).",
			func() string { return keysUsage }, keys},
		{"reprocess", "--all | --product ID [--url URL] [--key KEY] [--force]", "process again the images made by an older recipe", "Asks a running vitrine to process again the images made by an older recipe version, with a progress bar.",
			func() string {
				return "Flags:\n" +
					"  --all            every product\n" +
					"  --product ID     one product\n" +
					"  --force          also images made by the current recipe\n" +
					"  --url URL        base URL of the running vitrine (default http://localhost:8080)\n" +
					"  --key KEY        API key with the write scope (env VITRINE_API_KEY)\n\n" + sameAsServe()
			}, reprocess},
		{"import", "FILE [--url URL] [--key KEY] [--format ndjson|csv]", "import a catalog file (NDJSON or CSV) into a running vitrine", "Sends a catalog file to a running vitrine (POST /imports) and follows its rows as they are applied, with progress bars and a summary.",
			func() string { return importUsage }, importFile},
		{"export", "[--url URL] [--key KEY] [--format ndjson|csv] [--out FILE] [filters]", "export a running vitrine's products (NDJSON or CSV)", "Writes the products of a running vitrine (GET /products/export) as NDJSON or CSV, in the form vitrine import reads.",
			func() string { return exportUsage }, exportProducts},
		{"gc", "[--dry-run] [--grace 1h]", "sweep orphan files (those of no image) now", "Sweeps orphan files: files under products/ of the configured file store whose image does not exist in the configured database, older than the grace period.",
			func() string { return gcUsage }, gc},
		{"webhook-secret", "", "print a new webhook signing secret", "Prints a new random webhook signing secret, for VITRINE_WEBHOOK_SECRET (whsec_ and 32 random bytes in base64).",
			func() string {
				return "Receivers verify each delivery with it, as the Standard Webhooks specification says\n" +
					"(webhook-id, webhook-timestamp and webhook-signature headers).\n"
			},
			func(_ context.Context, args []string, _ func(string) string, stdout, _ io.Writer) error {
				if len(args) > 0 {
					return fmt.Errorf("webhook-secret takes no arguments, got %q", args)
				}
				fmt.Fprintln(stdout, webhook.NewSecret())
				return nil
			}},
		{"healthcheck", "", "check that this process is healthy (the container image's HEALTHCHECK)", "Asks the vitrine in this container or host whether it is healthy, and exits 1 with the reason when it is not.",
			func() string {
				return "An API node (VITRINE_ROLE api or all) must answer GET /readyz with 200 on VITRINE_ADDR.\n" +
					"A worker (VITRINE_ROLE=worker) must serve /metrics on VITRINE_METRICS_ADDR and see at least\n" +
					"one API node in its cluster (vitrine_cluster_members >= 1).\n"
			}, healthcheck},
		{"version", "", "print the version", "Prints the version of this build.", func() string { return "" },
			func(_ context.Context, _ []string, _ func(string) string, stdout, _ io.Writer) error {
				fmt.Fprintf(stdout, "vitrine %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
				return nil
			}},
	}
}

func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func isHelp(arg string) bool {
	return arg == "help" || isHelpFlag(arg)
}

func isHelpFlag(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help"
}

// wantsHelp reports whether a command's arguments ask for its help: the
// word help as its only argument, or -h, -help or --help where a flag may
// stand — not as the value of the flag before it (vitrine keys create
// --name help makes a key named help), and not after "--".
func wantsHelp(args []string) bool {
	if len(args) == 1 && args[0] == "help" {
		return true
	}
	for i, a := range args {
		if a == "--" {
			return false
		}
		if isHelpFlag(a) && (i == 0 || !takesValue(args[i-1])) {
			return true
		}
	}
	return false
}

// takesValue reports whether arg is a flag whose value is the next
// argument: written without "=", and not one of the commands' boolean
// flags.
func takesValue(arg string) bool {
	if len(arg) < 2 || arg[0] != '-' || strings.Contains(arg, "=") || isHelpFlag(arg) {
		return false
	}
	switch strings.TrimLeft(arg, "-") {
	case "dry-run", "json", "quiet", "all", "force": // every boolean flag of every command
		return false
	}
	return true
}

// usage is the help of vitrine itself.
func usage() string {
	var b strings.Builder
	b.WriteString("vitrine — a product catalog service with asynchronous image processing\n\nUsage:\n")
	for _, c := range commands() {
		line := "  vitrine " + c.name
		if c.args != "" && len(c.args) < 24 {
			line += " " + c.args
		}
		fmt.Fprintf(&b, "%-34s %s\n", line, c.brief)
	}
	b.WriteString("\nvitrine COMMAND --help (or vitrine help COMMAND) tells more about each.\n")
	return b.String()
}

// settingsHelp lists every setting of vitrine serve: its flag, variable,
// default and meaning.
func settingsHelp() string {
	var c Config
	var b strings.Builder
	for _, s := range c.settings() {
		def := s.def
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(&b, "  --%s (%s, default %s)\n      %s\n", s.flag, s.env, def, s.usage)
	}
	return b.String()
}

// closeChecked closes c as a command returns (deferred), and makes its
// error the command's when the command had none: a database closed after
// writes may still fail.
func closeChecked(c io.Closer, err *error) { //nolint:gocritic // ptrToRefParam: it sets the deferring function's named result
	if closeErr := c.Close(); closeErr != nil && *err == nil {
		*err = fmt.Errorf("close: %w", closeErr)
	}
}
