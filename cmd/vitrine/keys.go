package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/catalog/access"
)

const keysUsage = `Usage:
  vitrine keys create --scopes read,write,admin [--owner USER_ID] [--name NAME] [--json | --quiet]
  vitrine keys list [--json]
  vitrine keys revoke ID

Keys are kept in the configured database (VITRINE_DATA_DIR or
VITRINE_POSTGRES_URL, as for vitrine serve), so every node knows them.
The key itself is shown once, by create: only its SHA-256 is stored.
Scopes nest: admin includes write, write includes read. A key with an
owner may write only the products of that user_id.
`

// keys manages API keys directly in the database, with no server running:
// the way to make the first key.
func keys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, keysUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	fs := flag.NewFlagSet("vitrine keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, keysUsage) }
	scopes := fs.String("scopes", "", "comma-separated scopes: read, write, admin")
	owner := fs.Int64("owner", 0, "user_id whose products the key may write (0: any)")
	name := fs.String("name", "", "a name to tell the key apart")
	asJSON := fs.Bool("json", false, "print JSON, as the admin API does")
	quiet := fs.Bool("quiet", false, "print only the key (create)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := parseConfig(nil, getenv, io.Discard)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	db, err := openDatabase(ctx, cfg, false, nil)
	if err != nil {
		return err
	}
	defer closeChecked(db, &err)
	switch args[0] {
	case "create":
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
		}
		var list []access.Scope
		for _, s := range splitList(*scopes) {
			sc, err := access.ParseScope(s)
			if err != nil {
				return err
			}
			list = append(list, sc)
		}
		var ownerPtr *int64
		if *owner != 0 {
			ownerPtr = owner
		}
		key, secret, err := access.IssueKey(ctx, db, uuid.Must(uuid.NewV7()).String(), *name, list, ownerPtr, time.Now())
		if err != nil {
			return describeKeyError(err)
		}
		switch {
		case *quiet:
			fmt.Fprintln(stdout, secret)
		case *asJSON:
			return json.NewEncoder(stdout).Encode(struct {
				access.APIKey
				Key string `json:"key"`
			}{*key, secret})
		default:
			fmt.Fprintf(stdout, "id      %s\nkey     %s\nscopes  %s\nowner   %s\n\nThe key is shown this once: keep it now. Send it as Authorization: Bearer <key>.\n",
				key.ID, secret, scopeList(key.Scopes), ownerText(key.Owner))
		}
		return nil
	case "list":
		list, err := db.ListKeys(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(map[string]any{"items": list})
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tHINT\tSCOPES\tOWNER\tNAME\tCREATED\tREVOKED")
		for _, k := range list {
			revoked := "-"
			if k.RevokedAt != nil {
				revoked = k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s…\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Hint, scopeList(k.Scopes), ownerText(k.Owner), k.Name,
				k.CreatedAt.Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return fmt.Errorf("give the id of the key to revoke: vitrine keys revoke ID")
		}
		k, err := db.RevokeKey(ctx, fs.Arg(0), time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key %s revoked at %s; every node refuses it within VITRINE_KEY_CACHE_TTL (%s)\n",
			k.ID, k.RevokedAt.Format(time.RFC3339), cfg.Access.KeyCacheTTL)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown keys command %q\n\n%s", args[0], keysUsage)
		return errUsage
	}
}

func describeKeyError(err error) error {
	var ce *catalog.Error
	if errors.As(err, &ce) && ce.Kind == catalog.KindInvalid {
		return fmt.Errorf("%s", ce.Detail)
	}
	return err
}

func scopeList(scopes []access.Scope) string {
	s := make([]string, len(scopes))
	for i, sc := range scopes {
		s[i] = string(sc)
	}
	return strings.Join(s, ",")
}

func ownerText(owner *int64) string {
	if owner == nil {
		return "any"
	}
	return strconv.FormatInt(*owner, 10)
}
