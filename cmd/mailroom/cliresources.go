package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
)

func init() {
	addCLI(usersCommand)
	addCLI(keysCommand)
	addCLI(mailboxesCommand)
	addCLI(syncCommand)
	addCLI(messagesCommand)
	addCLI(statsCommand)
	addCLI(usageCommand)
	addCLI(limitsCommand)
	addCLI(taxonomyCommand)
	addCLI(deadLettersCommand)
	addCLI(classifyCommand)
}

var esc = url.PathEscape

// userFlag adds --user (default me, the caller) to a command.
func userFlag(cmd *cobra.Command, user *string) {
	cmd.Flags().StringVar(user, "user", "me", "the user (an id, or me for the caller)")
}

// apiRun wraps a command body that needs the API client.
func (c *cli) apiRun(f func(ctx context.Context, api *apiClient, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if _, err := c.format(); err != nil {
			return err
		}
		api, err := c.api()
		if err != nil {
			return err
		}
		return f(cmd.Context(), api, args)
	}
}

// ---- users

func usersCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "users: create, get", Args: noArgs, RunE: groupRun}
	var displayName, email string
	create := &cobra.Command{
		Use:   "create ID",
		Short: "create a user (admin)",
		Args:  exactArgs(1),
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			u := &authv1.User{}
			err := api.do(ctx, "POST", "/v1/users?userId="+url.QueryEscape(args[0]),
				&authv1.User{DisplayName: displayName, Email: email}, u)
			if err != nil {
				return err
			}
			return c.printUsers(u)
		}),
	}
	create.Flags().StringVar(&displayName, "display-name", "", "the user's name")
	create.Flags().StringVar(&email, "email", "", "the user's address")
	get := &cobra.Command{
		Use:   "get [ID]",
		Short: "show a user (default me, the caller)",
		Args:  cobra.MaximumNArgs(1),
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			id := "me"
			if len(args) == 1 {
				id = args[0]
			}
			u := &authv1.User{}
			if err := api.do(ctx, "GET", "/v1/users/"+esc(id), nil, u); err != nil {
				return err
			}
			return c.printUsers(u)
		}),
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "list users (admin)",
		Args:  noArgs,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, _ []string) error {
			all := &authv1.ListUsersResponse{}
			err := pages(func(tok string) (string, error) {
				r := &authv1.ListUsersResponse{}
				err := api.do(ctx, "GET", "/v1/users?pageSize=100&pageToken="+url.QueryEscape(tok), nil, r)
				all.Users = append(all.Users, r.GetUsers()...)
				return r.GetNextPageToken(), err
			})
			if err != nil {
				return err
			}
			return c.print(all, func(tw *tabwriter.Writer) { c.userTable(tw, all.GetUsers()...) })
		}),
	}
	var yes bool
	del := &cobra.Command{
		Use:   "delete ID --yes",
		Short: "delete a user and everything of theirs: keys, mailboxes, credentials, messages, usage",
		Args:  exactArgs(1),
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			if !yes {
				return usagef("users delete removes every trace of %s: add --yes", args[0])
			}
			r := &authv1.DeleteUserResponse{}
			if err := api.do(ctx, "DELETE", "/v1/users/"+esc(args[0]), nil, r); err != nil {
				return err
			}
			return c.print(r, func(tw *tabwriter.Writer) {
				c.header(tw, "DELETED", "COUNT")
				for _, k := range sortedKeys(r.GetDeleted()) {
					fmt.Fprintf(tw, "%s\t%d\n", k, r.GetDeleted()[k])
				}
			})
		}),
	}
	del.Flags().BoolVar(&yes, "yes", false, "really delete")
	cmd.AddCommand(create, get, list, del)
	return cmd
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *cli) printUsers(u *authv1.User) error {
	return c.print(u, func(tw *tabwriter.Writer) { c.userTable(tw, u) })
}

func (c *cli) userTable(tw *tabwriter.Writer, us ...*authv1.User) {
	c.header(tw, "ID", "NAME", "EMAIL", "ROLE", "CREATED")
	for _, u := range us {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", short(u.GetName()), u.GetDisplayName(), u.GetEmail(),
			enumShort(u.GetRole(), "ROLE_"), ts(u.GetCreateTime(), u.GetCreateTime() != nil))
	}
}

// ---- keys

func keysCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "API keys: create, list, revoke", Args: noArgs, RunE: groupRun}
	var user, displayName string
	var keyOnly bool
	create := &cobra.Command{
		Use:   "create",
		Short: "create an API key (the key is printed once, never again)",
		Args:  noArgs,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, _ []string) error {
			k := &authv1.ApiKey{}
			if err := api.do(ctx, "POST", "/v1/users/"+esc(user)+"/apiKeys", &authv1.ApiKey{DisplayName: displayName}, k); err != nil {
				return err
			}
			if keyOnly {
				fmt.Fprintln(c.stdout, k.GetKey())
				return nil
			}
			return c.print(k, func(tw *tabwriter.Writer) {
				c.header(tw, "ID", "NAME", "KEY")
				fmt.Fprintf(tw, "%s\t%s\t%s\n", short(k.GetName()), k.GetDisplayName(), k.GetKey())
			})
		}),
	}
	userFlag(create, &user)
	create.Flags().StringVar(&displayName, "display-name", "", "what the key is for (laptop, ci, …)")
	create.Flags().BoolVarP(&keyOnly, "quiet", "q", false, "print the key alone (for scripts: KEY=$(mailroom keys create -q))")
	list := &cobra.Command{
		Use:   "list",
		Short: "list API keys (their prefixes; keys are never shown again)",
		Args:  noArgs,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, _ []string) error {
			all := &authv1.ListApiKeysResponse{}
			err := pages(func(tok string) (string, error) {
				r := &authv1.ListApiKeysResponse{}
				err := api.do(ctx, "GET", "/v1/users/"+esc(user)+"/apiKeys?pageSize=100&pageToken="+url.QueryEscape(tok), nil, r)
				all.ApiKeys = append(all.ApiKeys, r.GetApiKeys()...)
				return r.GetNextPageToken(), err
			})
			if err != nil {
				return err
			}
			return c.print(all, func(tw *tabwriter.Writer) {
				c.header(tw, "ID", "NAME", "PREFIX", "CREATED")
				for _, k := range all.GetApiKeys() {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", short(k.GetName()), k.GetDisplayName(), k.GetPrefix(), ts(k.GetCreateTime(), k.GetCreateTime() != nil))
				}
			})
		}),
	}
	userFlag(list, &user)
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "revoke an API key",
		Args:  exactArgs(1),
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			if err := api.do(ctx, "DELETE", "/v1/users/"+esc(user)+"/apiKeys/"+esc(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.stderr, "revoked key %s\n", args[0])
			return nil
		}),
	}
	userFlag(revoke, &user)
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// pages calls page with each page token until the last page.
func pages(page func(token string) (next string, err error)) error {
	tok := ""
	for {
		next, err := page(tok)
		if err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		tok = next
	}
}

// ---- mailboxes

func mailboxesCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "mailboxes", Aliases: []string{"mailbox"}, Short: "mailboxes: create, list, get, delete, connect imap|gmail", Args: noArgs, RunE: groupRun}
	var user, provider, displayName, address string
	create := &cobra.Command{
		Use:   "create ID",
		Short: "create an IMPORT mailbox (connect imap|gmail for the others)",
		Args:  exactArgs(1),
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			p, ok := ingestv1.Provider_value["PROVIDER_"+strings.ToUpper(strings.TrimPrefix(strings.ToUpper(provider), "PROVIDER_"))]
			if !ok {
				return usagef("--provider %q: want import, imap or gmail", provider)
			}
			mb := &ingestv1.Mailbox{}
			err := api.do(ctx, "POST", "/v1/users/"+esc(user)+"/mailboxes?mailboxId="+url.QueryEscape(args[0]),
				&ingestv1.Mailbox{Provider: ingestv1.Provider(p), DisplayName: displayName, Address: address}, mb)
			if err != nil {
				return err
			}
			return c.printMailboxes(&ingestv1.ListMailboxesResponse{Mailboxes: []*ingestv1.Mailbox{mb}}, mb)
		}),
	}
	userFlag(create, &user)
	create.Flags().StringVar(&provider, "provider", "import", "import, imap or gmail")
	create.Flags().StringVar(&displayName, "display-name", "", "the mailbox's name")
	create.Flags().StringVar(&address, "address", "", "the mailbox's address")
	list := &cobra.Command{
		Use:   "list",
		Short: "list mailboxes",
		Args:  noArgs,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, _ []string) error {
			all, err := listMailboxes(ctx, api, user)
			if err != nil {
				return err
			}
			return c.printMailboxes(all, all)
		}),
	}
	userFlag(list, &user)
	get := &cobra.Command{
		Use:               "get ID",
		Short:             "show a mailbox",
		Args:              exactArgs(1),
		ValidArgsFunction: c.completeMailboxes,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			mb := &ingestv1.Mailbox{}
			if err := api.do(ctx, "GET", "/v1/users/"+esc(user)+"/mailboxes/"+esc(args[0]), nil, mb); err != nil {
				return err
			}
			return c.printMailboxes(&ingestv1.ListMailboxesResponse{Mailboxes: []*ingestv1.Mailbox{mb}}, mb)
		}),
	}
	userFlag(get, &user)
	del := &cobra.Command{
		Use:               "delete ID",
		Short:             "delete a mailbox, its messages and its credential",
		Args:              exactArgs(1),
		ValidArgsFunction: c.completeMailboxes,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			if err := api.do(ctx, "DELETE", "/v1/users/"+esc(user)+"/mailboxes/"+esc(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.stderr, "deleted mailbox %s\n", args[0])
			return nil
		}),
	}
	userFlag(del, &user)
	connect := &cobra.Command{Use: "connect", Short: "connect an IMAP or Gmail mailbox", Args: noArgs, RunE: groupRun}
	connect.AddCommand(connectIMAPCommand(c), connectGmailCommand(c))
	cmd.AddCommand(create, list, get, del, connect, reconnectCommand(c))
	return cmd
}

func listMailboxes(ctx context.Context, api *apiClient, user string) (*ingestv1.ListMailboxesResponse, error) {
	all := &ingestv1.ListMailboxesResponse{}
	err := pages(func(tok string) (string, error) {
		r := &ingestv1.ListMailboxesResponse{}
		err := api.do(ctx, "GET", "/v1/users/"+esc(user)+"/mailboxes?pageSize=100&pageToken="+url.QueryEscape(tok), nil, r)
		all.Mailboxes = append(all.Mailboxes, r.GetMailboxes()...)
		return r.GetNextPageToken(), err
	})
	return all, err
}

// printMailboxes prints out as JSON/YAML (one mailbox, or the list) or the
// table of mbs.
func (c *cli) printMailboxes(mbs *ingestv1.ListMailboxesResponse, out proto.Message) error {
	return c.print(out, func(tw *tabwriter.Writer) {
		c.header(tw, "ID", "PROVIDER", "STATE", "ADDRESS", "MESSAGES", "LAST SYNC")
		for _, mb := range mbs.GetMailboxes() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", short(mb.GetName()), enumShort(mb.GetProvider(), "PROVIDER_"),
				enumShort(mb.GetState(), "MAILBOX_STATE_"), mb.GetAddress(), mb.GetMessageCount(),
				ts(mb.GetLastSyncTime(), mb.GetLastSyncTime() != nil))
		}
	})
}

func connectIMAPCommand(c *cli) *cobra.Command {
	var user, address, host, username, security, displayName string
	var port int
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "imap ID --host HOST --username NAME",
		Short: "connect an IMAP mailbox (the password is prompted without echo, or --password-stdin)",
		Args:  exactArgs(1),
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			if host == "" || username == "" {
				return usagef("connect imap: --host and --username are required")
			}
			sec, ok := ingestv1.ImapSecurity_value["IMAP_SECURITY_"+strings.ToUpper(security)]
			if !ok {
				return usagef("--security %q: want tls, starttls or none", security)
			}
			password, err := c.secret(passwordStdin, "IMAP password for "+username+"@"+host+": ", "--password-stdin")
			if err != nil {
				return err
			}
			if address == "" {
				address = username
			}
			mb := &ingestv1.Mailbox{}
			err = api.do(ctx, "POST", "/v1/users/"+esc(user)+"/mailboxes?mailboxId="+url.QueryEscape(args[0]), &ingestv1.Mailbox{
				Provider: ingestv1.Provider_PROVIDER_IMAP, Address: address, DisplayName: displayName,
				Imap: &ingestv1.ImapSettings{Host: host, Port: int32(port), Username: username, Password: password, Security: ingestv1.ImapSecurity(sec)},
			}, mb)
			if err != nil {
				return err
			}
			return c.printMailboxes(&ingestv1.ListMailboxesResponse{Mailboxes: []*ingestv1.Mailbox{mb}}, mb)
		}),
	}
	userFlag(cmd, &user)
	f := cmd.Flags()
	f.StringVar(&host, "host", "", "the IMAP server")
	f.IntVar(&port, "port", 993, "the IMAP port")
	f.StringVar(&username, "username", "", "the IMAP login")
	f.StringVar(&address, "address", "", "the mailbox's address (default the username)")
	f.StringVar(&security, "security", "tls", "tls, starttls or none")
	f.StringVar(&displayName, "display-name", "", "the mailbox's name")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

// secret reads a password: from stdin with fromStdin, else prompted on the
// terminal without echo.
func (c *cli) secret(fromStdin bool, prompt, flagName string) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", usagef("standard input is not a terminal: pipe the secret with %s", flagName)
	}
	fmt.Fprint(c.stderr, prompt)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(c.stderr)
	return string(b), err
}

func connectGmailCommand(c *cli) *cobra.Command {
	var user, displayName string
	var timeout time.Duration
	var noBrowser bool
	cmd := &cobra.Command{
		Use:   "gmail ID",
		Short: "connect a Gmail mailbox: prints the consent URL, opens the browser, waits until ACTIVE",
		Args:  exactArgs(1),
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			mb := &ingestv1.Mailbox{}
			err := api.do(ctx, "POST", "/v1/users/"+esc(user)+"/mailboxes?mailboxId="+url.QueryEscape(args[0]),
				&ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_GMAIL, DisplayName: displayName}, mb)
			if err != nil {
				return err
			}
			return c.awaitConsent(ctx, api, mb, timeout, noBrowser)
		}),
	}
	userFlag(cmd, &user)
	cmd.Flags().StringVar(&displayName, "display-name", "", "the mailbox's name")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the consent")
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "print the URL without opening a browser")
	return cmd
}

// awaitConsent prints the mailbox's consent URL, opens a browser on it
// when there is one, and waits until the mailbox is ACTIVE.
func (c *cli) awaitConsent(ctx context.Context, api *apiClient, mb *ingestv1.Mailbox, timeout time.Duration, noBrowser bool) error {
	if u := mb.GetAuthorizationUrl(); u != "" && mb.GetState() != ingestv1.MailboxState_MAILBOX_STATE_ACTIVE {
		fmt.Fprintf(c.stderr, "Open this URL to let mailroom read the mailbox:\n\n  %s\n\n", u)
		if !noBrowser {
			openBrowser(u)
		}
		fmt.Fprintln(c.stderr, "waiting for the consent …")
	}
	deadline := time.After(timeout)
	for mb.GetState() != ingestv1.MailboxState_MAILBOX_STATE_ACTIVE {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("mailbox %s: still %s after %s", short(mb.GetName()), enumShort(mb.GetState(), "MAILBOX_STATE_"), timeout)
		case <-time.After(time.Second):
		}
		if err := api.do(ctx, "GET", "/v1/"+mb.GetName(), nil, mb); err != nil {
			return err
		}
	}
	return c.printMailboxes(&ingestv1.ListMailboxesResponse{Mailboxes: []*ingestv1.Mailbox{mb}}, mb)
}

func reconnectCommand(c *cli) *cobra.Command {
	var user string
	var timeout time.Duration
	var noBrowser bool
	cmd := &cobra.Command{
		Use:               "reconnect ID",
		Short:             "a new Gmail consent for a DISCONNECTED or pending mailbox (cursor and messages kept); waits until ACTIVE",
		Args:              exactArgs(1),
		ValidArgsFunction: c.completeMailboxes,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			r := &ingestv1.ReconnectMailboxResponse{}
			if err := api.do(ctx, "POST", "/v1/users/"+esc(user)+"/mailboxes/"+esc(args[0])+":reconnect", &ingestv1.ReconnectMailboxRequest{}, r); err != nil {
				return err
			}
			return c.awaitConsent(ctx, api, r.GetMailbox(), timeout, noBrowser)
		}),
	}
	userFlag(cmd, &user)
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the consent")
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "print the URL without opening a browser")
	return cmd
}

// openBrowser opens u when there is a browser to open; errors are ignored
// (the URL is printed anyway).
func openBrowser(u string) {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return
		}
		cmd = exec.Command("xdg-open", u)
	}
	if cmd.Start() == nil {
		go cmd.Wait() //nolint:errcheck
	}
}

// ---- sync

func syncCommand(c *cli) *cobra.Command {
	var user, mode string
	var maxMessages int
	var watch bool
	cmd := &cobra.Command{
		Use:               "start MAILBOX",
		Short:             "start a sync of a mailbox; --watch follows it to the end",
		Args:              exactArgs(1),
		ValidArgsFunction: c.completeMailboxes,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			m, ok := ingestv1.SyncMode_value["SYNC_MODE_"+strings.ToUpper(mode)]
			if mode != "" && !ok {
				return usagef("--mode %q: want full or incremental", mode)
			}
			job := &ingestv1.SyncJob{}
			err := api.do(ctx, "POST", "/v1/users/"+esc(user)+"/mailboxes/"+esc(args[0])+":sync",
				&ingestv1.SyncMailboxRequest{Mode: ingestv1.SyncMode(m), MaxMessages: int32(maxMessages)}, job)
			if err != nil {
				return err
			}
			if watch {
				if job, err = c.watchSync(ctx, api, job); err != nil {
					return err
				}
			}
			if err := c.printSyncJob(job); err != nil {
				return err
			}
			if job.GetState() == ingestv1.SyncJobState_SYNC_JOB_STATE_FAILED {
				return fmt.Errorf("sync %s failed: %s", short(job.GetName()), job.GetError())
			}
			return nil
		}),
	}
	userFlag(cmd, &user)
	cmd.Flags().StringVar(&mode, "mode", "", "full or incremental (default: the server's choice)")
	cmd.Flags().IntVar(&maxMessages, "max", 0, "at most this many messages (0: the server's cap)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "show progress until the job ends, then a summary")
	return syncGroup(c, cmd)
}

// syncGroup is `sync start|list|get`; `sync MAILBOX` is `sync start MAILBOX`.
func syncGroup(c *cli, start *cobra.Command) *cobra.Command {
	group := &cobra.Command{
		Use:               "sync [MAILBOX]",
		Short:             "sync jobs: start (sync MAILBOX for short; --watch shows progress), list, get",
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: c.completeMailboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return groupRun(cmd, args)
			}
			if args[0] == "-h" || args[0] == "--help" {
				return cmd.Help()
			}
			start.SetContext(cmd.Context())
			if err := start.ParseFlags(args); errors.Is(err, pflag.ErrHelp) {
				return start.Help()
			} else if err != nil {
				return usageError{err}
			}
			if err := start.Args(start, start.Flags().Args()); err != nil {
				return err
			}
			return start.RunE(start, start.Flags().Args())
		},
	}
	group.Flags().AddFlagSet(start.Flags())
	group.DisableFlagParsing = true
	var user string
	list := &cobra.Command{
		Use:   "list",
		Short: "list sync jobs, newest first",
		Args:  noArgs,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, _ []string) error {
			all := &ingestv1.ListSyncJobsResponse{}
			err := pages(func(tok string) (string, error) {
				r := &ingestv1.ListSyncJobsResponse{}
				err := api.do(ctx, "GET", "/v1/users/"+esc(user)+"/syncJobs?pageSize=100&pageToken="+url.QueryEscape(tok), nil, r)
				all.SyncJobs = append(all.SyncJobs, r.GetSyncJobs()...)
				return r.GetNextPageToken(), err
			})
			if err != nil {
				return err
			}
			return c.print(all, func(tw *tabwriter.Writer) { c.syncJobTable(tw, all.GetSyncJobs()...) })
		}),
	}
	userFlag(list, &user)
	var watch bool
	get := &cobra.Command{
		Use:   "get JOB",
		Short: "show a sync job; --watch follows it to the end",
		Args:  exactArgs(1),
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			job := &ingestv1.SyncJob{}
			if err := api.do(ctx, "GET", "/v1/users/"+esc(user)+"/syncJobs/"+esc(short(args[0])), nil, job); err != nil {
				return err
			}
			if watch {
				var err error
				if job, err = c.watchSync(ctx, api, job); err != nil {
					return err
				}
			}
			return c.printSyncJob(job)
		}),
	}
	userFlag(get, &user)
	get.Flags().BoolVarP(&watch, "watch", "w", false, "show progress until the job ends, then a summary")
	group.AddCommand(start, list, get)
	return group
}

func syncDone(s ingestv1.SyncJobState) bool {
	return s == ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED || s == ingestv1.SyncJobState_SYNC_JOB_STATE_FAILED
}

// watchSync follows the job's stream, drawing a progress line on stderr,
// until it ends.
func (c *cli) watchSync(ctx context.Context, api *apiClient, job *ingestv1.SyncJob) (*ingestv1.SyncJob, error) {
	start := time.Now()
	draw := func(j *ingestv1.SyncJob) {
		p := j.GetProgress()
		width, done := 30, 0
		if p.GetListed() > 0 {
			done = int(int64(width) * min(p.GetPublished()+p.GetSkipped()+p.GetFailed(), p.GetListed()) / p.GetListed())
		}
		fmt.Fprintf(c.stderr, "\r[%s%s] %d/%d published, %d skipped, %d failed, %d classified, %d batched  %s ", strings.Repeat("#", done), strings.Repeat(".", width-done),
			p.GetPublished(), p.GetListed(), p.GetSkipped(), p.GetFailed(), p.GetClassified(), p.GetBatched(), enumShort(j.GetState(), "SYNC_JOB_STATE_"))
	}
	for !syncDone(job.GetState()) {
		err := api.stream(ctx, "/v1/"+job.GetName()+":watch", func(b json.RawMessage) error {
			j := &ingestv1.SyncJob{}
			if err := unmarshal.Unmarshal(b, j); err != nil {
				return err
			}
			job = j
			draw(job)
			return nil
		})
		if err != nil {
			fmt.Fprintln(c.stderr)
			return nil, err
		}
		if !syncDone(job.GetState()) { // the stream ended early: ask again
			if err := api.do(ctx, "GET", "/v1/"+job.GetName(), nil, job); err != nil {
				return nil, err
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	draw(job)
	p := job.GetProgress()
	fmt.Fprintf(c.stderr, "\nsync %s %s in %s: %d listed, %d fetched, %d published, %d skipped, %d failed; %d classified, %d waiting in an OpenAI batch\n",
		short(job.GetName()), strings.ToLower(enumShort(job.GetState(), "SYNC_JOB_STATE_")), time.Since(start).Round(100*time.Millisecond),
		p.GetListed(), p.GetFetched(), p.GetPublished(), p.GetSkipped(), p.GetFailed(), p.GetClassified(), p.GetBatched())
	return job, nil
}

func (c *cli) printSyncJob(j *ingestv1.SyncJob) error {
	return c.print(j, func(tw *tabwriter.Writer) { c.syncJobTable(tw, j) })
}

func (c *cli) syncJobTable(tw *tabwriter.Writer, js ...*ingestv1.SyncJob) {
	c.header(tw, "JOB", "MAILBOX", "STATE", "LISTED", "PUBLISHED", "SKIPPED", "FAILED", "CLASSIFIED", "BATCHED", "STARTED")
	for _, j := range js {
		p := j.GetProgress()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", short(j.GetName()), short(j.GetMailbox()), enumShort(j.GetState(), "SYNC_JOB_STATE_"),
			p.GetListed(), p.GetPublished(), p.GetSkipped(), p.GetFailed(), p.GetClassified(), p.GetBatched(), ts(j.GetCreateTime(), j.GetCreateTime() != nil))
	}
}

// ---- messages

func messagesCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "messages", Aliases: []string{"message", "msg"}, Short: "messages: list, get, watch, correct", Args: noArgs, RunE: groupRun}
	var user, filter, category string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "list messages, newest first (pages followed up to --limit)",
		Args:  noArgs,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, _ []string) error {
			all, err := listMessages(ctx, api, user, messageFilter(filter, category), limit)
			if err != nil {
				return err
			}
			if all.GetNextPageToken() != "" {
				fmt.Fprintf(c.stderr, "(the first %d; --limit 0 lists them all)\n", len(all.GetMessages()))
			}
			return c.print(all, func(tw *tabwriter.Writer) { c.messageTable(tw, all.GetMessages()) })
		}),
	}
	for _, cmd := range []*cobra.Command{list} {
		userFlag(cmd, &user)
		cmd.Flags().StringVar(&filter, "filter", "", `an AIP-160 filter, for example 'received_time > "2026-01-01T00:00:00Z"'`)
		cmd.Flags().StringVar(&category, "category", "", "only this category (newsletters, work, …)")
		cmd.Flags().IntVar(&limit, "limit", 100, "at most this many messages (0: all)")
		_ = cmd.RegisterFlagCompletionFunc("category", c.completeCategories)
	}
	get := &cobra.Command{
		Use:               "get ID",
		Short:             "show a message and its classification",
		Args:              exactArgs(1),
		ValidArgsFunction: c.completeMessages,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			m := &storev1.Message{}
			if err := api.do(ctx, "GET", "/v1/users/"+esc(user)+"/messages/"+esc(short(args[0])), nil, m); err != nil {
				return err
			}
			return c.print(m, func(tw *tabwriter.Writer) {
				cl := m.GetClassification()
				for _, kv := range [][2]string{
					{"ID", short(m.GetName())}, {"Mailbox", short(m.GetMailbox())}, {"From", m.GetFrom()},
					{"To", strings.Join(m.GetTo(), ", ")}, {"Subject", m.GetSubject()},
					{"Received", ts(m.GetReceivedTime(), m.GetReceivedTime() != nil)},
					{"State", enumShort(m.GetState(), "MESSAGE_STATE_")}, {"Category", cl.GetCategory()},
					{"Confidence", confidence(cl.GetConfidence(), cl != nil)}, {"Reason", cl.GetReason()}, {"Snippet", m.GetSnippet()},
				} {
					if kv[1] != "" {
						fmt.Fprintf(tw, "%s:\t%s\n", c.bold(kv[0]), kv[1])
					}
				}
			})
		}),
	}
	userFlag(get, &user)
	var interval time.Duration
	var cursor string
	watch := &cobra.Command{
		Use:   "watch",
		Short: "print the newest messages, then each as it arrives or is classified, until interrupted",
		Long: `watch prints the newest messages, then follows the server's stream of changes
(GET /v1/users/{user}/messages:watch): each message as it is stored and as its
classification lands. When the connection drops it reconnects and resumes from
the last cursor, so nothing is missed and nothing printed twice. --cursor resumes
an earlier watch instead of printing the newest messages first.`,
		Args: noArgs,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, _ []string) error {
			f := messageFilter(filter, category)
			first := cursor == ""
			backoff := time.Second
			for {
				q := url.Values{}
				if f != "" {
					q.Set("filter", f)
				}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				err := api.stream(ctx, "/v1/users/"+esc(user)+"/messages:watch?"+q.Encode(), func(b json.RawMessage) error {
					r := &storev1.WatchMessagesResponse{}
					if err := unmarshal.Unmarshal(b, r); err != nil {
						return err
					}
					cursor = r.GetCursor()
					backoff = time.Second
					if first {
						// The stream has started: what is there now is printed
						// once, and what changes from here on comes through it.
						first = false
						recent, err := listMessages(ctx, api, user, f, 100)
						if err != nil {
							return err
						}
						ms := recent.GetMessages()
						for i, j := 0, len(ms)-1; i < j; i, j = i+1, j-1 { // oldest first
							ms[i], ms[j] = ms[j], ms[i]
						}
						return c.printWatch(ms, true)
					}
					if r.GetMessage() == nil {
						return nil
					}
					return c.printWatch([]*storev1.Message{r.GetMessage()}, false)
				})
				if ctx.Err() != nil {
					return nil
				}
				var rest *restError
				if errors.As(err, &rest) && rest.status.GetCode() != int32(codes.Unavailable) && rest.httpStatus != 0 && rest.httpStatus < 500 {
					return err // refused: reconnecting would be refused again
				}
				// The stream ended (a gateway restarting, a dropped
				// connection): resume from the last cursor.
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 30*time.Second)
			}
		}),
	}
	userFlag(watch, &user)
	watch.Flags().StringVar(&filter, "filter", "", "an AIP-160 filter")
	watch.Flags().StringVar(&category, "category", "", "only this category")
	watch.Flags().StringVar(&cursor, "cursor", "", "resume an earlier watch from this cursor")
	watch.Flags().DurationVar(&interval, "interval", 0, "ignored: the watch is a stream")
	_ = watch.Flags().MarkDeprecated("interval", "the watch is a stream; it no longer polls")
	_ = watch.RegisterFlagCompletionFunc("category", c.completeCategories)
	correct := &cobra.Command{
		Use:               "correct ID CATEGORY",
		Short:             "correct a message's category (the sender is learned, the mail becomes an example for the model)",
		Args:              exactArgs(2),
		ValidArgsFunction: c.completeMessages,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			body := &storev1.Message{Classification: &mailv1.Classification{Category: args[1]}}
			m := &storev1.Message{}
			if err := api.do(ctx, "PATCH", "/v1/users/"+esc(user)+"/messages/"+esc(short(args[0]))+"?updateMask=classification.category", body, m); err != nil {
				return err
			}
			return c.print(m, func(tw *tabwriter.Writer) { c.messageTable(tw, []*storev1.Message{m}) })
		}),
	}
	userFlag(correct, &user)
	cmd.AddCommand(list, get, watch, correct)
	return cmd
}

// printWatch prints newly seen messages: JSON lines for -o json, YAML
// documents for -o yaml, table rows otherwise.
func (c *cli) printWatch(ms []*storev1.Message, first bool) error {
	f, _ := c.format()
	for _, m := range ms {
		switch f {
		case "json":
			b, err := stableJSON(m, false)
			if err != nil {
				return err
			}
			c.stdout.Write(b) //nolint:errcheck
		case "yaml":
			b, _ := stableJSON(m, false)
			y, err := yaml.JSONToYAML(b)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "---\n%s", y)
		}
	}
	if f != "table" {
		return nil
	}
	return c.table(func(tw *tabwriter.Writer) {
		if first {
			c.messageTable(tw, ms)
		} else {
			c.messageRows(tw, ms)
		}
	})
}

func messageFilter(filter, category string) string {
	if category == "" {
		return filter
	}
	cat := fmt.Sprintf("category = %q", category)
	if filter == "" {
		return cat
	}
	return "(" + filter + ") AND " + cat
}

func listMessages(ctx context.Context, api *apiClient, user, filter string, limit int) (*storev1.ListMessagesResponse, error) {
	all := &storev1.ListMessagesResponse{}
	err := pages(func(tok string) (string, error) {
		size := 200
		if limit > 0 {
			size = min(size, limit-len(all.Messages))
		}
		q := url.Values{"pageSize": {strconv.Itoa(size)}}
		if tok != "" {
			q.Set("pageToken", tok)
		}
		if filter != "" {
			q.Set("filter", filter)
		}
		r := &storev1.ListMessagesResponse{}
		err := api.do(ctx, "GET", "/v1/users/"+esc(user)+"/messages?"+q.Encode(), nil, r)
		all.Messages = append(all.Messages, r.GetMessages()...)
		if limit > 0 && len(all.Messages) >= limit {
			all.NextPageToken = r.GetNextPageToken()
			return "", err
		}
		return r.GetNextPageToken(), err
	})
	return all, err
}

func (c *cli) messageTable(tw *tabwriter.Writer, ms []*storev1.Message) {
	c.header(tw, "ID", "RECEIVED", "FROM", "SUBJECT", "CATEGORY", "CONF")
	c.messageRows(tw, ms)
}

func (c *cli) messageRows(tw *tabwriter.Writer, ms []*storev1.Message) {
	for _, m := range ms {
		cl := m.GetClassification()
		cat := cl.GetCategory()
		if cat == "" {
			cat = "(" + strings.ToLower(enumShort(m.GetState(), "MESSAGE_STATE_")) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", short(m.GetName()), ts(m.GetReceivedTime(), m.GetReceivedTime() != nil),
			clip(m.GetFrom(), 32), clip(m.GetSubject(), 50), cat, confidence(cl.GetConfidence(), cl != nil))
	}
}

func confidence(f float32, ok bool) string {
	if !ok {
		return ""
	}
	return strconv.FormatFloat(float64(f), 'f', 2, 32)
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// ---- stats, usage, limits

func statsCommand(c *cli) *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "counts per category and mailbox",
		Args:  noArgs,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, _ []string) error {
			s := &storev1.Stats{}
			if err := api.do(ctx, "GET", "/v1/users/"+esc(user)+"/stats", nil, s); err != nil {
				return err
			}
			return c.print(s, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "total %d, classified %d, pending %d, failed %d\n\n", s.GetTotal(), s.GetClassified(), s.GetPending(), s.GetFailed())
				c.header(tw, "CATEGORY", "MESSAGES")
				for _, cc := range s.GetCategories() {
					fmt.Fprintf(tw, "%s\t%d\n", cc.GetCategory(), cc.GetCount())
				}
				if len(s.GetMailboxes()) > 0 {
					fmt.Fprintln(tw)
					c.header(tw, "MAILBOX", "MESSAGES")
					for _, mc := range s.GetMailboxes() {
						fmt.Fprintf(tw, "%s\t%d\n", short(mc.GetMailbox()), mc.GetCount())
					}
				}
			})
		}),
	}
	userFlag(cmd, &user)
	return cmd
}

func usageCommand(c *cli) *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "classifications, tokens and cost",
		Args:  noArgs,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, _ []string) error {
			u := &storev1.Usage{}
			if err := api.do(ctx, "GET", "/v1/users/"+esc(user)+"/usage", nil, u); err != nil {
				return err
			}
			return c.print(u, func(tw *tabwriter.Writer) {
				for _, kv := range []struct {
					k string
					v any
				}{
					{"classifications", u.GetClassifications()}, {"  by rules", u.GetRuleClassifications()},
					{"  by the model", u.GetLlmClassifications()}, {"  from the cache", u.GetCacheClassifications()},
					{"requests", u.GetRequests()}, {"prompt tokens", u.GetPromptTokens()}, {"  cached", u.GetCachedPromptTokens()},
					{"completion tokens", u.GetCompletionTokens()}, {"cost", fmt.Sprintf("$%.4f", float64(u.GetCostMicros())/1e6)},
				} {
					fmt.Fprintf(tw, "%s\t%v\n", kv.k, kv.v)
				}
			})
		}),
	}
	userFlag(cmd, &user)
	return cmd
}

func limitsCommand(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "limits",
		Short: "the classifier's rate limiter: per-key limits and headroom, lane queues, budget",
		Args:  noArgs,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, _ []string) error {
			l := &classifierv1.GetLimitsResponse{}
			if err := api.do(ctx, "GET", "/v1/limits", nil, l); err != nil {
				return err
			}
			return c.print(l, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "model %s, %d replica(s)\n\n", l.GetModel(), l.GetReplicas())
				c.header(tw, "KEY", "RPM", "TPM", "REQ AVAIL", "TOK AVAIL", "IN FLIGHT", "429/MIN", "FROZEN")
				for _, k := range l.GetKeys() {
					fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t%d\t%d\t%.1fs\n", k.GetKey(), k.GetRequestsPerMinute(), k.GetTokensPerMinute(),
						k.GetRequestsAvailable(), k.GetTokensAvailable(), k.GetInFlight(), k.GetRateLimitedLastMinute(), k.GetFrozenSeconds())
				}
				fmt.Fprintln(tw)
				c.header(tw, "LANE", "WAITING")
				for _, q := range l.GetLanes() {
					fmt.Fprintf(tw, "%s\t%d\n", strings.ToLower(enumShort(q.GetLane(), "LANE_")), q.GetWaiting())
				}
			})
		}),
	}
}

// ---- taxonomy

func taxonomyCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "taxonomy", Short: "the categories mail is sorted into: get, edit", Args: noArgs, RunE: groupRun}
	var user string
	get := &cobra.Command{
		Use:   "get",
		Short: "show the taxonomy",
		Args:  noArgs,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, _ []string) error {
			t := &classifierv1.Taxonomy{}
			if err := api.do(ctx, "GET", "/v1/users/"+esc(user)+"/taxonomy", nil, t); err != nil {
				return err
			}
			return c.printTaxonomy(t)
		}),
	}
	userFlag(get, &user)
	edit := &cobra.Command{
		Use:   "edit",
		Short: "edit the taxonomy as YAML in $EDITOR (or read it from --file)",
		Args:  noArgs,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, _ []string) error {
			t := &classifierv1.Taxonomy{}
			if err := api.do(ctx, "GET", "/v1/users/"+esc(user)+"/taxonomy", nil, t); err != nil {
				return err
			}
			edited, err := editTaxonomy(t)
			if err != nil {
				return err
			}
			if edited == nil {
				fmt.Fprintln(c.stderr, "taxonomy unchanged")
				return nil
			}
			edited.Name = t.GetName()
			out := &classifierv1.Taxonomy{}
			if err := api.do(ctx, "PATCH", "/v1/"+t.GetName(), edited, out); err != nil {
				return err
			}
			return c.printTaxonomy(out)
		}),
	}
	userFlag(edit, &user)
	cmd.AddCommand(get, edit)
	return cmd
}

func (c *cli) printTaxonomy(t *classifierv1.Taxonomy) error {
	return c.print(t, func(tw *tabwriter.Writer) {
		c.header(tw, "CATEGORY", "DESCRIPTION")
		for _, cat := range t.GetCategories() {
			fmt.Fprintf(tw, "%s\t%s\n", cat.GetName(), cat.GetDescription())
		}
	})
}

// editTaxonomy opens $VISUAL or $EDITOR (else vi) on the categories as
// YAML and returns what was saved, or nil when nothing changed.
func editTaxonomy(t *classifierv1.Taxonomy) (*classifierv1.Taxonomy, error) {
	b, err := protojson.Marshal(&classifierv1.Taxonomy{Categories: t.GetCategories()})
	if err != nil {
		return nil, err
	}
	y, err := yaml.JSONToYAML(b)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "mailroom-taxonomy-*.yaml")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	head := "# The categories of " + t.GetName() + ": edit, save and quit. Each needs a name and a description.\n"
	if _, err := f.WriteString(head + string(y)); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	editor := os.Getenv("VISUAL")
	if editor == "" {
		editor = os.Getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	cmd := exec.Command("sh", "-c", editor+` "$1"`, "editor", f.Name())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("taxonomy edit: %s: %w", editor, err)
	}
	after, err := os.ReadFile(f.Name())
	if err != nil {
		return nil, err
	}
	if string(after) == head+string(y) {
		return nil, nil
	}
	j, err := yaml.YAMLToJSON(after)
	if err != nil {
		return nil, usagef("taxonomy edit: the YAML does not parse: %v", err)
	}
	out := &classifierv1.Taxonomy{}
	if err := protojson.Unmarshal(j, out); err != nil {
		return nil, usagef("taxonomy edit: %v", err)
	}
	return out, nil
}

// ---- dead letters

func deadLettersCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "dead-letters", Short: "messages the classifier gave up on: list, replay", Args: noArgs, RunE: groupRun}
	var user string
	list := &cobra.Command{
		Use:   "list",
		Short: "list dead letters",
		Args:  noArgs,
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, _ []string) error {
			all := &classifierv1.ListDeadLettersResponse{}
			err := pages(func(tok string) (string, error) {
				r := &classifierv1.ListDeadLettersResponse{}
				err := api.do(ctx, "GET", "/v1/users/"+esc(user)+"/deadLetters?pageSize=100&pageToken="+url.QueryEscape(tok), nil, r)
				all.DeadLetters = append(all.DeadLetters, r.GetDeadLetters()...)
				return r.GetNextPageToken(), err
			})
			if err != nil {
				return err
			}
			return c.print(all, func(tw *tabwriter.Writer) {
				c.header(tw, "ID", "MESSAGE", "MAILBOX", "ATTEMPTS", "REASON")
				for _, d := range all.GetDeadLetters() {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", short(d.GetName()), short(d.GetMessage()), short(d.GetMailbox()), d.GetAttempts(), clip(d.GetReason(), 60))
				}
			})
		}),
	}
	userFlag(list, &user)
	replay := &cobra.Command{
		Use:   "replay ID",
		Short: "send a dead letter through the classifier again",
		Args:  exactArgs(1),
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			r := &classifierv1.ReplayDeadLetterResponse{}
			if err := api.do(ctx, "POST", "/v1/users/"+esc(user)+"/deadLetters/"+esc(args[0])+":replay", &classifierv1.ReplayDeadLetterRequest{}, r); err != nil {
				return err
			}
			return c.print(r, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "replayed %s\n", short(r.GetMessage())) })
		}),
	}
	userFlag(replay, &user)
	cmd.AddCommand(list, replay)
	return cmd
}

// ---- classify

func classifyCommand(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "classify FILE",
		Short: "classify one mail (RFC 822 file, - for stdin) now, without storing it",
		Args:  exactArgs(1),
		RunE: c.apiRun(func(ctx context.Context, api *apiClient, args []string) error {
			var raw []byte
			var err error
			if args[0] == "-" {
				raw, err = io.ReadAll(os.Stdin)
			} else {
				raw, err = os.ReadFile(args[0])
			}
			if err != nil {
				return usagef("classify: %v", err)
			}
			r := &classifierv1.ClassifyResponse{}
			if err := api.do(ctx, "POST", "/v1/classify", &classifierv1.ClassifyRequest{Raw: raw}, r); err != nil {
				return err
			}
			return c.print(r, func(tw *tabwriter.Writer) {
				cl := r.GetClassification()
				c.header(tw, "CATEGORY", "CONFIDENCE", "SOURCE", "REASON")
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cl.GetCategory(), confidence(cl.GetConfidence(), cl != nil),
					strings.ToLower(enumShort(cl.GetSource(), "CLASSIFICATION_SOURCE_")), cl.GetReason())
			})
		}),
	}
}

// ---- completion of resource ids from the server

func (c *cli) completeMailboxes(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	api, err := c.api()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	user, _ := cmd.Flags().GetString("user")
	if user == "" {
		user = "me"
	}
	all, err := listMailboxes(cmd.Context(), api, user)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var ids []string
	for _, mb := range all.GetMailboxes() {
		ids = append(ids, short(mb.GetName())+"\t"+enumShort(mb.GetProvider(), "PROVIDER_")+" "+mb.GetDisplayName())
	}
	return ids, cobra.ShellCompDirectiveNoFileComp
}

func (c *cli) completeMessages(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	api, err := c.api()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	user, _ := cmd.Flags().GetString("user")
	if user == "" {
		user = "me"
	}
	all, err := listMessages(cmd.Context(), api, user, "", 100)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var ids []string
	for _, m := range all.GetMessages() {
		ids = append(ids, short(m.GetName())+"\t"+clip(m.GetSubject(), 40))
	}
	return ids, cobra.ShellCompDirectiveNoFileComp
}

func (c *cli) completeCategories(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	api, err := c.api()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	user, _ := cmd.Flags().GetString("user")
	if user == "" {
		user = "me"
	}
	t := &classifierv1.Taxonomy{}
	if err := api.do(cmd.Context(), "GET", "/v1/users/"+esc(user)+"/taxonomy", nil, t); err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var names []string
	for _, cat := range t.GetCategories() {
		names = append(names, cat.GetName()+"\t"+cat.GetDescription())
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
