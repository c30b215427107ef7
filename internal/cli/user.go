package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"github.com/enarx-go/enarx/drawbridge/client"
	"github.com/enarx-go/enarx/internal/credentials"
)

// defaultOIDCClientID is upstream's public client id at its issuer.
const defaultOIDCClientID = "4NuaJxkQv8EZBeJKE56R57gKJbxrTLG2"

func newUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Log in to and register with a Drawbridge registry",
	}
	cmd.AddCommand(newUserLoginCmd(), newUserRegisterCmd(), newUserInfoCmd())
	return cmd
}

func newUserLoginCmd() *cobra.Command {
	var rf registryFlags
	var clientID, storeHost, flow string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in with the OIDC device flow and store the access token",
		Long: `Log in to the OIDC issuer (--oidc-domain) with the OAuth 2.0 device flow:
open the printed address, enter the code, and the token is stored for
--store-host, in a file only you can read under your config directory
(or with --credential-helper).`,
		Args: cobra.NoArgs,
		RunE: rf.hinted(func(cmd *cobra.Command, args []string) error {
			if storeHost == "" {
				return errors.New("enarx user login needs --store-host HOST[:PORT], the registry the token is for")
			}
			if rf.oidcDomain == "" {
				return errors.New("enarx user login needs --oidc-domain URL (or ENARX_OIDC_DOMAIN), the OIDC issuer your registry trusts")
			}
			if _, err := client.ParseUserSpec(storeHost + "/x"); err != nil {
				return fmt.Errorf("invalid --store-host %q", storeHost)
			}
			id, err := credentials.ID(rf.oidcDomain, storeHost)
			if err != nil {
				return err
			}
			st, err := rf.store()
			if err != nil {
				return err
			}
			hc, err := rf.oidcHTTPClient()
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			lc := credentials.LoginConfig{
				Issuer:     rf.oidcDomain,
				ClientID:   clientID,
				Audience:   "https://" + storeHost + "/",
				HTTPClient: hc,
			}
			var tok *oauth2.Token
			switch flow {
			case "client":
				tok, err = credentials.ClientCredentialsLogin(cmd.Context(), lc, os.Getenv("ENARX_OIDC_CLIENT_SECRET"))
			case "device":
				lc.Prompt = func(uri, code, complete string) {
					// The issuer's strings must not drive the terminal.
					uri, code, complete = printable(uri), printable(code), printable(complete)
					fmt.Fprintf(stderr, "To log in, open %s and enter the code: %s\n", uri, code)
					if complete != "" {
						fmt.Fprintf(stderr, "(or open %s)\n", complete)
					}
					fmt.Fprintln(stderr, "Waiting for approval…")
				}
				tok, err = credentials.DeviceLogin(cmd.Context(), lc)
			default:
				return fmt.Errorf("invalid --oidc-flow %q: use device or client", flow)
			}
			if err != nil {
				return err
			}
			if err := st.Put(cmd.Context(), id, tok.AccessToken); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Credentials saved locally.")
			fmt.Fprintln(cmd.OutOrStdout(), "Login successful.")
			return nil
		}),
	}
	rf.register(cmd.Flags())
	cmd.Flags().StringVar(&clientID, "oidc-client-id", envOr("ENARX_OIDC_CLIENT_ID", defaultOIDCClientID),
		"OAuth client id registered at the issuer (env ENARX_OIDC_CLIENT_ID)")
	cmd.Flags().StringVar(&storeHost, "store-host", "", "registry host the token is for (HOST[:PORT]; required)")
	cmd.Flags().StringVar(&flow, "oidc-flow", "device",
		"device (interactive, RFC 8628) or client (client credentials with the secret in env ENARX_OIDC_CLIENT_SECRET)")
	return cmd
}

func newUserRegisterCmd() *cobra.Command {
	var rf registryFlags
	cmd := &cobra.Command{
		Use:   "register HOST/USER",
		Short: "Create a user owned by your OIDC identity",
		Args:  exactArgs(1),
		RunE: rf.hinted(func(cmd *cobra.Command, args []string) error {
			spec, err := client.ParseUserSpec(args[0])
			if err != nil {
				return err
			}
			tok, err := rf.authToken(cmd.Context(), spec.Host, true)
			if err != nil {
				return err
			}
			rf.token = tok
			sub, err := subject(cmd, &rf, tok)
			if err != nil {
				return err
			}
			c, err := rf.client(cmd, spec.Host, true)
			if err != nil {
				return err
			}
			return c.PutUser(cmd.Context(), spec.User, client.UserRecord{Subject: sub})
		}),
	}
	rf.register(cmd.Flags())
	return cmd
}

// subject learns the token's OIDC subject: from the token itself when it is
// a JWT (the registry verifies it and rejects a record for another
// subject), else from the issuer's userinfo endpoint.
func subject(cmd *cobra.Command, rf *registryFlags, tok string) (string, error) {
	if strings.Count(tok, ".") == 2 {
		if sub, err := credentials.SubjectFromJWT(tok); err == nil {
			return sub, nil
		}
	}
	if rf.oidcDomain == "" {
		return "", errors.New("the token is not a JWT, so its OIDC subject comes from the issuer's userinfo endpoint: give --oidc-domain URL (or ENARX_OIDC_DOMAIN)")
	}
	hc, err := rf.oidcHTTPClient()
	if err != nil {
		return "", err
	}
	sub, err := credentials.Subject(cmd.Context(), rf.oidcDomain, tok, hc)
	if err != nil {
		return "", fmt.Errorf("learning your OIDC subject: %w", err)
	}
	return sub, nil
}

func newUserInfoCmd() *cobra.Command {
	var rf registryFlags
	cmd := &cobra.Command{
		Use:   "info HOST/USER",
		Short: `Print a user's record ({"subject":…}); only its owner may read it`,
		Args:  exactArgs(1),
		RunE: rf.hinted(func(cmd *cobra.Command, args []string) error {
			spec, err := client.ParseUserSpec(args[0])
			if err != nil {
				return err
			}
			c, err := rf.client(cmd, spec.Host, true)
			if err != nil {
				return err
			}
			rec, err := c.GetUser(cmd.Context(), spec.User)
			if err != nil {
				return err
			}
			out, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(jsonTerminalSafe(out)))
			return nil
		}),
	}
	rf.register(cmd.Flags())
	return cmd
}

// printable replaces control characters (terminal escapes) in s.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return '?'
		}
		return r
	}, s)
}
