package cli

import (
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/enarx-go/enarx/internal/platform"
	"github.com/enarx-go/enarx/internal/version"
)

func newPlatformCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "platform",
		Short: "Show what this machine can do for each Keep backend",
	}
	var asJSON, labels bool
	info := &cobra.Command{
		Use:   "info",
		Short: "Report, per backend, what this machine has and what to fix",
		Long: "Probe every Keep backend (sgx; the microVM backends sev, kvm and tdx-vm; the snp\n" +
			"and tdx guests; sandbox; nil): devices, kernel parameters, CPUID leaves, the QEMU\n" +
			"release, Keep image and firmware the microVM backends launch, cached collateral\n" +
			"and kernel confinement features. Each backend this build runs is probed through\n" +
			"its own checks, so ✔ means `enarx run --backend NAME` accepts it here; hints\n" +
			"after each backend's rows say what to fix. ENARX_VM_ACCEL=tcg, ENARX_QEMU,\n" +
			"ENARX_KEEP_IMAGE, ENARX_SNP_FIRMWARE and ENARX_TDX_FIRMWARE change the rows as\n" +
			"they change the backends. Always exits 0.\n\n" +
			"--labels prints Kubernetes node labels instead, enarx.dev/backend.NAME=true or\n" +
			"=false per backend from the same checks, one per line: a node-feature-discovery\n" +
			"local feature file, or arguments to `kubectl label node` (docs/kubernetes.md).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := platform.Collect(version.Version, platform.HostEnv())
			out := cmd.OutOrStdout()
			if labels {
				return r.WriteLabels(out)
			}
			if asJSON {
				return r.WriteJSON(out)
			}
			var c platform.Colors
			if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				c = platform.TTYColors
			}
			return r.WriteText(out, c)
		},
	}
	info.Flags().BoolVarP(&asJSON, "json", "j", false, "print the report as JSON")
	info.Flags().BoolVar(&labels, "labels", false, "print Kubernetes node labels (enarx.dev/backend.NAME=true|false)")
	info.MarkFlagsMutuallyExclusive("json", "labels")
	cmd.AddCommand(info)
	addTEEPlatformCommands(cmd, g)
	return cmd
}
