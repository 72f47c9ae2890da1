package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/status"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/transport"
)

func init() {
	register("vault", "the credential vault: `vault rotate` re-encrypts every credential under the active key of MAILROOM_VAULT_KEYS", vault)
}

// vaultEnv is what `mailroom vault` reads from the environment: it talks
// gRPC to auth straight (RotateVaultKey has no REST route), with the
// transport security of the services when MAILROOM_TLS_* is set.
type vaultEnv struct {
	Addrs     grpcconn.Addrs
	Key       string `env:"MAILROOM_KEY"`
	Transport transport.Config
}

func vaultUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: mailroom vault rotate [-addr host:port] [-timeout d]

rotate    re-wrap the data key of every credential (and the token-signing
          keys) under the active key-encryption key, the first of auth's
          MAILROOM_VAULT_KEYS. Afterwards the older keys can be removed
          from MAILROOM_VAULT_KEYS. Needs an admin API key in MAILROOM_KEY.

Environment: MAILROOM_AUTH_ADDR (auth's default address), MAILROOM_KEY,
MAILROOM_TLS_CERT_FILE, MAILROOM_TLS_KEY_FILE, MAILROOM_TLS_CA_FILE.
`)
}

func vault(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		vaultUsage(stderr)
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			return flag.ErrHelp
		}
		return fmt.Errorf("vault: unknown subcommand %q", args[0])
	}
	var env vaultEnv
	if err := config.Load(ctx, &env, nil); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	fs := flag.NewFlagSet("vault rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { vaultUsage(stderr) }
	addr := fs.String("addr", env.Addrs.Auth, "the auth service's gRPC address")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long the rotation may take")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if env.Key == "" {
		return errors.New("vault rotate: set MAILROOM_KEY to an admin API key")
	}
	creds, err := env.Transport.ClientCredentials()
	if err != nil {
		return fmt.Errorf("vault rotate: %w", err)
	}
	cc, err := grpcconn.Dial(*addr, grpcconn.WithCredentials(creds))
	if err != nil {
		return fmt.Errorf("vault rotate: %w", err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := authv1.NewAuthServiceClient(cc).RotateVaultKey(authn.OutgoingToken(ctx, env.Key), &authv1.RotateVaultKeyRequest{})
	if err != nil {
		st := status.Convert(err)
		return fmt.Errorf("vault rotate at %s: %s: %s", *addr, st.Code(), st.Message())
	}
	fmt.Fprintf(stdout, "rotated %d credentials; every credential is now under key-encryption key %s\n", resp.GetRotated(), resp.GetKeyId())
	return nil
}
