package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	sevabi "github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	"github.com/spf13/cobra"

	"github.com/enarx-go/enarx/attestation/tdx/tdxquote"
	snpbackend "github.com/enarx-go/enarx/backend/snp"
	tdxbackend "github.com/enarx-go/enarx/backend/tdx"
	"github.com/enarx-go/enarx/evidence/emulated"
	"github.com/enarx-go/enarx/evidence/snp"
	"github.com/enarx-go/enarx/evidence/tdx"
	"github.com/enarx-go/enarx/internal/platform"
	"github.com/enarx-go/enarx/microvm/sevhost"
)

// newPlatformSNPCmd is `enarx platform snp …`: SEV-SNP guest collateral and
// measurements.
func newPlatformSNPCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snp",
		Short: "SEV-SNP guest: collateral cache and measurements",
	}
	var cacheDir string
	var force bool
	fetch := &cobra.Command{
		Use:   "fetch",
		Short: "Fetch the VCEK and AMD CRLs into the cache (cache first; AMD's KDS is rate limited)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c := &snp.Cache{Dir: cacheDir}
			var id *snp.Identity
			p := &snp.Provider{Cache: c}
			if rep, err := p.GetReport(ctx, [64]byte{}); err == nil {
				i, err := snp.IdentifyReport(rep.Raw)
				if err != nil {
					return err
				}
				id = &i
			} else if hid, herr := snpHostIdentity(); herr == nil {
				// On an SEV-SNP host: the VCEK that will sign its guests'
				// reports (the sev backend sends the cache into its Keeps).
				id = &hid
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "not in an SEV-SNP guest (%v) nor on an SEV-SNP host (%v): fetching the CRLs only\n", err, herr)
			}
			res, err := snp.Refresh(ctx, c, &snp.Fetcher{}, id, force)
			if res != nil {
				if res.VCEKFetched {
					fmt.Fprintln(cmd.OutOrStdout(), "fetched the VCEK")
				}
				for _, pl := range res.CRLsFetched {
					fmt.Fprintf(cmd.OutOrStdout(), "fetched the %s CRL\n", pl)
				}
			}
			if err != nil {
				return fmt.Errorf("refreshing %s: %w", cacheDir, err)
			}
			return printSNPCache(cmd.OutOrStdout(), c)
		},
	}
	fetch.Flags().BoolVar(&force, "force", false, "fetch even what the cache holds and has not expired")
	status := &cobra.Command{
		Use:   "status",
		Short: "Show what the collateral cache holds and when it expires",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printSNPCache(cmd.OutOrStdout(), &snp.Cache{Dir: cacheDir})
		},
	}
	var emulatedFlag, asJSON bool
	var off snpOfflineFlags
	measure := &cobra.Command{
		Use:   "measurement",
		Short: "Print what a Steward [snp] policy should pin for this Keep, or compute a QEMU launch digest offline",
		Long: `Without offline flags: reads this SEV-SNP guest's attestation report (or, with
--emulated, the snp-emulated backend's) and prints the [snp] policy lines.

With --ovmf, --vcpus, --vcpu-type and --kernel [--initrd] [--append] (or
--no-kernel): computes offline the launch digest AMD firmware will report for a
guest QEMU starts with that AmdSev OVMF (-bios), measured direct boot
(sev-snp-guest kernel-hashes=on), vCPU count and type, and guest features. The
last line printed is the 96-hex-digit digest; it equals what virtee's
sev-snp-measure --mode snp --vmm-type QEMU prints for the same inputs.

With --vcpus but no --kernel, --initrd, --append or --no-kernel: measures
this enarx's own Keep image with the vCPU model the sev backend launches
(EPYC-v4; --vcpu-type may only name it) (found as enarx run finds it,
or named by ENARX_KEEP_IMAGE) launched with --ovmf or, without it, the SEV
firmware the sev backend would use (ENARX_SNP_FIRMWARE, QEMU's firmware
descriptors, distribution paths), and prints the [snp] policy lines to pin.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if offline(cmd) {
				if emulatedFlag {
					return errors.New("--emulated cannot be combined with the offline flags (--ovmf, --kernel, --vcpus, ...)")
				}
				if keepImageMode(cmd) {
					return runSNPKeepImage(cmd.OutOrStdout(), &off, asJSON)
				}
				return runSNPOffline(cmd.OutOrStdout(), &off, asJSON)
			}
			raw, root, err := snpReport(cmd.Context(), emulatedFlag, cacheDir)
			if err != nil {
				return err
			}
			return printSNPMeasurement(cmd.OutOrStdout(), raw, root, asJSON)
		},
	}
	measure.Flags().BoolVar(&emulatedFlag, "emulated", false, "describe the snp-emulated backend instead of this guest")
	measure.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	off.register(measure)
	for _, c := range []*cobra.Command{fetch, status, measure} {
		c.Flags().StringVar(&cacheDir, "cache-dir", snpbackend.CacheDir(), "collateral cache directory (env ENARX_SNP_CACHE)")
		cmd.AddCommand(c)
	}
	return cmd
}

func snpReport(ctx context.Context, emu bool, cacheDir string) ([]byte, *emulated.SNPRoot, error) {
	if emu {
		p, err := snpbackend.EmulatedProvider()
		if err != nil {
			return nil, nil, err
		}
		raw, err := p.Root.SignReport([64]byte{}, p.Options)
		return raw, p.Root, err
	}
	rep, err := (&snp.Provider{Cache: &snp.Cache{Dir: cacheDir}}).GetReport(ctx, [64]byte{})
	if err != nil {
		return nil, nil, fmt.Errorf("%w (use --emulated on a machine without SEV-SNP)", err)
	}
	return rep.Raw, nil, nil
}

func printSNPCache(w io.Writer, c *snp.Cache) error {
	ents, err := c.List()
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		fmt.Fprintf(w, "the cache %s is empty; run `enarx platform snp fetch`\n", c.Dir)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tWHAT\tEXPIRES\tSTATE")
	for _, e := range ents {
		state := "valid"
		if e.Expired {
			state = "EXPIRED: run `enarx platform snp fetch`"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Kind, e.Subject, e.NextUpdate.Format(time.RFC3339), state)
	}
	return tw.Flush()
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func printSNPMeasurement(w io.Writer, raw []byte, root *emulated.SNPRoot, asJSON bool) error {
	rep, err := sevabi.ReportToProto(raw)
	if err != nil {
		return err
	}
	pol, err := sevabi.ParseSnpPolicy(rep.GetPolicy())
	if err != nil {
		return err
	}
	tcb := kds.DecomposeTCBVersion(kds.TCBVersion(rep.GetReportedTcb()))
	out := map[string]any{
		"measurement":       hex.EncodeToString(rep.GetMeasurement()),
		"host_data":         hex.EncodeToString(rep.GetHostData()),
		"id_key_digest":     hex.EncodeToString(rep.GetIdKeyDigest()),
		"author_key_digest": hex.EncodeToString(rep.GetAuthorKeyDigest()),
		"guest_svn":         rep.GetGuestSvn(),
		"policy":            fmt.Sprintf("%#x", rep.GetPolicy()),
		"abi":               fmt.Sprintf("%d.%d", pol.ABIMajor, pol.ABIMinor),
		"debug":             pol.Debug,
		"reported_tcb":      map[string]uint8{"bl": tcb.BlSpl, "tee": tcb.TeeSpl, "snp": tcb.SnpSpl, "ucode": tcb.UcodeSpl},
		"report_version":    rep.GetVersion(),
		"emulated":          root != nil,
	}
	if root != nil {
		out["emulated_root_pem"] = string(root.ARKPEM()) + string(root.ASKPEM())
	}
	if asJSON {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(out)
	}
	if root != nil {
		fmt.Fprintln(w, "# snp-emulated: signed by a LOCAL TEST ROOT, not AMD hardware. Never use in production.")
	}
	fmt.Fprintln(w, "# Steward policy for this Keep (see docs/policy.md):")
	fmt.Fprintln(w, "[snp]")
	fmt.Fprintf(w, "hash = [%q]\n", out["measurement"])
	if !isZero(rep.GetIdKeyDigest()) {
		fmt.Fprintf(w, "id_key_digest = [%q]\n", out["id_key_digest"])
	}
	if !isZero(rep.GetAuthorKeyDigest()) {
		fmt.Fprintf(w, "signer = [%q]\n", out["author_key_digest"])
	}
	fmt.Fprintf(w, "abi = \">=%s\"\n", out["abi"])
	if root != nil {
		fmt.Fprintf(w, "emulated_root = '''\n%s'''\n", strings.TrimSpace(string(root.ARKPEM())+string(root.ASKPEM()))+"\n")
	}
	fmt.Fprintf(w, "# guest_svn = %d, debug = %v, reported TCB: bl=%d tee=%d snp=%d ucode=%d\n",
		rep.GetGuestSvn(), pol.Debug, tcb.BlSpl, tcb.TeeSpl, tcb.SnpSpl, tcb.UcodeSpl)
	return nil
}

// newPlatformTDXCmd is `enarx platform tdx …`.
func newPlatformTDXCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tdx",
		Short: "TDX guest: collateral cache and measurements",
	}
	var cacheDir string
	fetch := &cobra.Command{
		Use:   "fetch",
		Short: "Fetch TDX TCB Info, QE Identity and CRLs from Intel PCS into the cache",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := (&tdx.Provider{}).GetQuote(cmd.Context(), [64]byte{})
			if err != nil {
				return fmt.Errorf("%w (collateral is selected by this platform's FMSPC, so fetch runs inside the TDX guest)", err)
			}
			col, err := tdx.Refresh(cmd.Context(), &tdx.Cache{Dir: cacheDir}, &tdx.Fetcher{}, q.Raw)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cached %d CRLs, TCB Info and QE Identity in %s\n", len(col.CRLs), cacheDir)
			return nil
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show whether the collateral cache is complete",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			col, err := (&tdx.Cache{Dir: cacheDir}).Collateral()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d CRLs, TCB Info (%d bytes), QE Identity (%d bytes)\n",
				cacheDir, len(col.CRLs), len(col.TCB.Report), len(col.QEIdentity.Report))
			return nil
		},
	}
	var emulatedFlag, asJSON bool
	var firmware, variant string
	measure := &cobra.Command{
		Use:   "measurement",
		Short: "Print what a Steward [tdx] policy should pin for this Keep, or compute a TDVF's MRTD offline",
		Long: `Without --firmware: reads this TD's quote (or, with --emulated, the
tdx-emulated backend's) and prints the [tdx] policy lines.

With --firmware FILE: computes offline the MRTD of a TD that QEMU builds from
that TDVF (OVMF with TDX) image. The last line printed is the 96-hex-digit MRTD
of --variant; RTMR0-2 depend on QEMU's ACPI tables, the kernel and the command
line as the guest measures them, and are not computed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("firmware") || cmd.Flags().Changed("variant") {
				if emulatedFlag {
					return errors.New("--emulated cannot be combined with --firmware")
				}
				if firmware == "" {
					return errors.New("--firmware FILE is required to compute MRTD offline (a TDVF image, e.g. /usr/share/ovmf/OVMF.inteltdx.ms.fd)")
				}
				return runTDXOffline(cmd.OutOrStdout(), firmware, variant, asJSON)
			}
			var raw []byte
			var root *emulated.TDXRoot
			if emulatedFlag {
				p, err := tdxbackend.EmulatedProvider()
				if err != nil {
					return err
				}
				if raw, err = p.Root.SignQuote([64]byte{}, p.Options); err != nil {
					return err
				}
				root = p.Root
			} else {
				q, err := (&tdx.Provider{}).GetQuote(cmd.Context(), [64]byte{})
				if err != nil {
					return fmt.Errorf("%w (use --emulated on a machine without TDX)", err)
				}
				raw = q.Raw
			}
			return printTDXMeasurement(cmd.OutOrStdout(), raw, root, asJSON)
		},
	}
	measure.Flags().BoolVar(&emulatedFlag, "emulated", false, "describe the tdx-emulated backend instead of this guest")
	measure.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	measure.Flags().StringVar(&firmware, "firmware", "", "offline: the TDVF image QEMU loads (-bios)")
	measure.Flags().StringVar(&variant, "variant", "single-pass", "offline: page order of the VMM: single-pass (upstream QEMU >= 10.1, Linux >= 6.16) or two-pass (pre-upstream TDX trees)")
	for _, c := range []*cobra.Command{fetch, status, measure} {
		c.Flags().StringVar(&cacheDir, "cache-dir", tdxbackend.CacheDir(), "collateral cache directory (env ENARX_TDX_CACHE)")
		cmd.AddCommand(c)
	}
	return cmd
}

func printTDXMeasurement(w io.Writer, raw []byte, root *emulated.TDXRoot, asJSON bool) error {
	v4, err := tdxquote.ParseV4(raw)
	if err != nil {
		return fmt.Errorf("the TD quote does not parse: %w", err)
	}
	b := v4.GetTdQuoteBody()
	var rtmrs []string
	for _, r := range b.GetRtmrs() {
		rtmrs = append(rtmrs, hex.EncodeToString(r))
	}
	out := map[string]any{
		"mrtd":          hex.EncodeToString(b.GetMrTd()),
		"rtmrs":         rtmrs,
		"mrseam":        hex.EncodeToString(b.GetMrSeam()),
		"mrsignerseam":  hex.EncodeToString(b.GetMrSignerSeam()),
		"td_attributes": hex.EncodeToString(b.GetTdAttributes()),
		"xfam":          hex.EncodeToString(b.GetXfam()),
		"tee_tcb_svn":   hex.EncodeToString(b.GetTeeTcbSvn()),
		"debug":         len(b.GetTdAttributes()) > 0 && b.GetTdAttributes()[0]&1 == 1,
		"emulated":      root != nil,
	}
	if root != nil {
		out["emulated_root_pem"] = string(root.RootPEM())
	}
	if asJSON {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(out)
	}
	if root != nil {
		fmt.Fprintln(w, "# tdx-emulated: signed by a LOCAL TEST ROOT, not Intel hardware. Never use in production.")
	}
	fmt.Fprintln(w, "# Steward policy for this Keep (see docs/policy.md):")
	fmt.Fprintln(w, "[tdx]")
	fmt.Fprintf(w, "mrtd = [%q]\n", out["mrtd"])
	fmt.Fprintf(w, "mrseam = [%q]\n", out["mrseam"])
	// MRTD is the firmware only: the kernel (RTMR1) and its command line
	// and initrd (RTMR2) are what pin the Keep (a Steward refuses a table
	// without them unless allow_any_kernel is set). RTMR0 (ACPI tables,
	// the TD HOB) and RTMR3 (runtime) vary with the VM's configuration.
	for i, r := range rtmrs {
		if i == 1 || i == 2 {
			fmt.Fprintf(w, "rtmr%d = [%q]\n", i, r)
		} else {
			fmt.Fprintf(w, "# rtmr%d = %q\n", i, r)
		}
	}
	if root != nil {
		fmt.Fprintf(w, "emulated_root = '''\n%s'''\n", strings.TrimSpace(string(root.RootPEM()))+"\n")
	}
	fmt.Fprintf(w, "# td_attributes = %s, xfam = %s, tee_tcb_svn = %s\n", out["td_attributes"], out["xfam"], out["tee_tcb_svn"])
	return nil
}

// snpHostIdentity reads this SEV-SNP host's VCEK identity from /dev/sev.
func snpHostIdentity() (snp.Identity, error) {
	d, err := sevhost.Open()
	if err != nil {
		return snp.Identity{}, err
	}
	defer d.Close()
	return sevhost.HostIdentity(d, platform.HostCPUID)
}
