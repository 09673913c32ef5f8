// Package cli is `kubectl herald`: send a Notification, wait for it and
// tell its outcome by exit status, and read the notification log. It takes
// kubectl's flags (--kubeconfig, --context, -n, -o) through cli-runtime.
package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/scheme"
)

// env is what every command shares: the kubectl flags, the streams, the
// process environment (for CI run ids) and the clock.
type env struct {
	config  *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
	getenv  func(string) string
	now     func() time.Time
}

// client connects with the kubectl flags and returns the namespace they
// name (or the kubeconfig context's).
func (e *env) client() (client.WithWatch, string, error) {
	cfg, err := e.config.ToRESTConfig()
	if err != nil {
		return nil, "", withCode(ExitInvalid, err)
	}
	ns, _, err := e.config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", withCode(ExitInvalid, err)
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

// NewCommand is the root command. getenv reads the environment (os.Getenv
// outside tests).
func NewCommand(streams genericiooptions.IOStreams, getenv func(string) string) *cobra.Command {
	e := &env{config: genericclioptions.NewConfigFlags(true), streams: streams, getenv: getenv, now: time.Now}
	root := &cobra.Command{
		Use:   "kubectl-herald",
		Short: "Send Herald notifications and read their delivery log",
		Long: `kubectl herald sends a Notification, waits for it and exits with its outcome:
  0  Sent or Suppressed (PartiallySent too with --allow-partial)
  1  Failed, PartiallySent or Expired; or the command could not do its work
  2  the request was refused: a bad flag, or the API server's validation (the message names the field)
  3  --timeout passed first`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations: map[string]string{
			// kubectl plugins show as "kubectl herald" in help.
			cobra.CommandDisplayNameAnnotation: "kubectl herald",
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(ExitInvalid, err) })
	e.config.AddFlags(root.PersistentFlags())
	root.AddCommand(newSendCommand(e), newWaitCommand(e), newGetCommand(e), newDescribeCommand(e), newHistoryCommand(e))
	return root
}

// Main runs the command line and returns the exit status.
func Main(args []string) int {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	cmd := NewCommand(streams, os.Getenv)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err != nil {
		fmt.Fprintln(streams.ErrOut, "error:", err)
	}
	return ExitCode(err)
}

// exactName checks a command got one NAME, as exit 2 when not.
func exactName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return invalidf("%s needs exactly one Notification NAME, got %d", cmd.CommandPath(), len(args))
	}
	return nil
}

// completeNames completes Notification names in the namespace.
func completeNames(e *env) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, ns, err := e.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
		defer cancel()
		var list v1alpha1.NotificationList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.Limit(500)); err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, n := range list.Items {
			if strings.HasPrefix(n.Name, prefix) {
				names = append(names, n.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// output is -o json|yaml|name, as kubectl prints objects. kubectl's
// --template printing is left out: --template names a Herald Template here.
type output struct {
	flags *genericclioptions.PrintFlags
}

func addOutput(cmd *cobra.Command, operation string) *output {
	p := genericclioptions.NewPrintFlags(operation).WithTypeSetter(scheme.New())
	p.TemplatePrinterFlags = nil
	p.JSONYamlPrintFlags.AddFlags(cmd)
	cmd.Flags().StringVarP(p.OutputFormat, "output", "o", "", "Output format: json, yaml or name (progress then goes to stderr).")
	return &output{flags: p}
}

// set reports whether -o was given.
func (o *output) set() bool { return *o.flags.OutputFormat != "" }

// printer prints objects as -o says; without -o, the name and the
// operation ("notification.notify.herald.dev/x created").
func (o *output) printer() (printers.ResourcePrinter, error) {
	switch *o.flags.OutputFormat {
	case "", "json", "yaml", "name":
		return o.flags.ToPrinter()
	}
	return nil, invalidf("-o %q: want json, yaml or name", *o.flags.OutputFormat)
}
