package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"sigs.k8s.io/yaml"
)

// cliConfig is $XDG_CONFIG_HOME/mailroom/config.yaml: named contexts, each
// a server and an API key, and the one in use, like kubectl's kubeconfig.
type cliConfig struct {
	CurrentContext string       `json:"current-context,omitempty"`
	Contexts       []cliContext `json:"contexts,omitempty"`
}

type cliContext struct {
	Name   string `json:"name"`
	Server string `json:"server"`
	Key    string `json:"key,omitempty"`
}

const defaultServer = "http://127.0.0.1:8080"

func configPath() (string, error) {
	dir, err := os.UserConfigDir() // $XDG_CONFIG_HOME, else ~/.config
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	return filepath.Join(dir, "mailroom", "config.yaml"), nil
}

func loadConfig() (*cliConfig, string, error) {
	path, err := configPath()
	if err != nil {
		return nil, "", err
	}
	cfg := &cliConfig{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, path, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("config: %w", err)
	}
	if err := yaml.Unmarshal(b, cfg); err != nil {
		return nil, "", fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, path, nil
}

// save writes the config with mode 0600 (it holds API keys), through a
// temporary file so that a crash never leaves half a config.
func (cfg *cliConfig) save(path string) error {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("config: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

func (cfg *cliConfig) find(name string) *cliContext {
	for i := range cfg.Contexts {
		if cfg.Contexts[i].Name == name {
			return &cfg.Contexts[i]
		}
	}
	return nil
}

// target is where API commands go: the context's server and key, with
// MAILROOM (or the older MAILROOM_URL) and MAILROOM_KEY overriding them.
type target struct {
	server, key string
}

func (c *cli) target() (target, error) {
	cfg, _, err := loadConfig()
	if err != nil {
		return target{}, err
	}
	name := c.contextName
	if name == "" {
		name = cfg.CurrentContext
	}
	var t target
	if name != "" {
		ctx := cfg.find(name)
		if ctx == nil {
			if c.contextName != "" {
				return target{}, usagef("no context %q in the config (mailroom config get-contexts)", name)
			}
		} else {
			t = target{server: ctx.Server, key: ctx.Key}
		}
	}
	for _, env := range []string{"MAILROOM_URL", "MAILROOM"} {
		if v := os.Getenv(env); v != "" {
			t.server = v
		}
	}
	if v := os.Getenv("MAILROOM_KEY"); v != "" {
		t.key = v
	}
	if t.server == "" {
		t.server = defaultServer
	}
	t.server = strings.TrimSuffix(t.server, "/")
	if t.key == "" {
		return target{}, errors.New("no API key: run `mailroom login --server URL` or set MAILROOM_KEY")
	}
	return t, nil
}

func init() {
	addCLI(loginCommand)
	addCLI(configCommand)
}

func loginCommand(c *cli) *cobra.Command {
	var server, name string
	var keyStdin bool
	cmd := &cobra.Command{
		Use:   "login --server URL",
		Short: "store a server and an API key in the config (prompted without echo, or --key-stdin)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if server == "" {
				server = os.Getenv("MAILROOM")
			}
			if server == "" {
				return usagef("login: --server URL is required")
			}
			server = strings.TrimSuffix(server, "/")
			var key string
			if keyStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("login: reading the key: %w", err)
				}
				key = strings.TrimSpace(line)
			} else {
				fd := int(os.Stdin.Fd())
				if !term.IsTerminal(fd) {
					return usagef("login: standard input is not a terminal: pipe the key with --key-stdin")
				}
				fmt.Fprintf(c.stderr, "API key for %s: ", server)
				b, err := term.ReadPassword(fd)
				fmt.Fprintln(c.stderr)
				if err != nil {
					return fmt.Errorf("login: reading the key: %w", err)
				}
				key = strings.TrimSpace(string(b))
			}
			if key == "" {
				return usagef("login: the API key is empty")
			}
			// Check the key before storing it: who does it belong to?
			api := &apiClient{target: target{server: server, key: key}}
			var user authv1.User
			if err := api.do(cmd.Context(), "GET", "/v1/users/me", nil, &user); err != nil {
				return fmt.Errorf("login: %w", err)
			}
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			if ctx := cfg.find(name); ctx != nil {
				ctx.Server, ctx.Key = server, key
			} else {
				cfg.Contexts = append(cfg.Contexts, cliContext{Name: name, Server: server, Key: key})
			}
			cfg.CurrentContext = name
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "logged in to %s as %s (context %q)\n", server, user.GetName(), name)
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "the gateway's URL, for example http://127.0.0.1:8080 (default $MAILROOM)")
	cmd.Flags().StringVar(&name, "name", "default", "the context's name")
	cmd.Flags().BoolVar(&keyStdin, "key-stdin", false, "read the API key from standard input")
	return cmd
}

func configCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "contexts of the config file (servers and API keys)", Args: noArgs, RunE: groupRun}
	cmd.AddCommand(&cobra.Command{
		Use:   "get-contexts",
		Short: "list the contexts; * marks the current one",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, _, err := loadConfig()
			if err != nil {
				return err
			}
			return c.table(func(tw *tabwriter.Writer) {
				c.header(tw, "CURRENT", "NAME", "SERVER")
				for _, ctx := range cfg.Contexts {
					mark := ""
					if ctx.Name == cfg.CurrentContext {
						mark = "*"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", mark, ctx.Name, ctx.Server)
				}
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:               "use-context NAME",
		Short:             "make NAME the current context",
		Args:              exactArgs(1),
		ValidArgsFunction: completeContexts,
		RunE: func(_ *cobra.Command, args []string) error {
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			if cfg.find(args[0]) == nil {
				return usagef("no context %q in %s", args[0], path)
			}
			cfg.CurrentContext = args[0]
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "switched to context %q\n", args[0])
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "current-context",
		Short: "print the current context's name",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, _, err := loadConfig()
			if err != nil {
				return err
			}
			if cfg.CurrentContext == "" {
				return errors.New("no current context: run `mailroom login --server URL`")
			}
			fmt.Fprintln(c.stdout, cfg.CurrentContext)
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:               "delete-context NAME",
		Short:             "remove a context (and its key) from the config",
		Args:              exactArgs(1),
		ValidArgsFunction: completeContexts,
		RunE: func(_ *cobra.Command, args []string) error {
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			kept := cfg.Contexts[:0]
			for _, ctx := range cfg.Contexts {
				if ctx.Name != args[0] {
					kept = append(kept, ctx)
				}
			}
			if len(kept) == len(cfg.Contexts) {
				return usagef("no context %q in %s", args[0], path)
			}
			cfg.Contexts = kept
			if cfg.CurrentContext == args[0] {
				cfg.CurrentContext = ""
			}
			return cfg.save(path)
		},
	})
	return cmd
}

func completeContexts(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cfg, _, err := loadConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var names []string
	for _, ctx := range cfg.Contexts {
		names = append(names, ctx.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// groupRun is the RunE of a noun without a verb: its help, as a usage error.
func groupRun(cmd *cobra.Command, _ []string) error {
	cmd.SetOut(cmd.ErrOrStderr())
	_ = cmd.Help()
	return usagef("%s: name a command (%s --help)", cmd.CommandPath(), cmd.CommandPath())
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s wants %d argument(s), got %d (usage: %s)", cmd.CommandPath(), n, len(args), cmd.UseLine())
		}
		return nil
	}
}
