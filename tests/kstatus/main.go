// Command kstatus prints the kstatus (sigs.k8s.io/cli-utils) verdict for one
// ModelDeployment, read either from a live API server or from a file.
//
// Usage:
//
//	kstatus --kubeconfig PATH --namespace NS --name NAME
//	kstatus --file obj.json
//
// It prints one JSON line: {"status": "...", "message": "..."}.
// The exit code is 0 whenever a status was computed, 1 on a usage or read
// error, 2 when status.Compute itself failed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

var modelDeployments = schema.GroupVersionResource{
	Group:    "modeldeploy.io",
	Version:  "v1alpha1",
	Resource: "modeldeployments",
}

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kstatus", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "read the object from this JSON or YAML file (\"-\" for stdin)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server to read the ModelDeployment from")
	namespace := fs.String("namespace", "default", "namespace of the ModelDeployment")
	name := fs.String("name", "", "name of the ModelDeployment")
	timeout := fs.Duration("timeout", 30*time.Second, "timeout of the GET against the API server")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "kstatus: unexpected arguments: %v\n", fs.Args())
		return 1
	}

	var obj *unstructured.Unstructured
	var err error
	switch {
	case *file != "" && (*name != "" || *kubeconfig != ""):
		fmt.Fprintln(stderr, "kstatus: --file excludes --kubeconfig and --name")
		return 1
	case *file != "":
		obj, err = readFile(*file)
	case *kubeconfig != "" && *name != "":
		obj, err = readLive(*kubeconfig, *namespace, *name, *timeout)
	default:
		fmt.Fprintln(stderr, "kstatus: give either --file PATH or --kubeconfig PATH --namespace NS --name NAME")
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "kstatus: %v\n", err)
		return 1
	}

	res, err := status.Compute(obj)
	if err != nil {
		fmt.Fprintf(stderr, "kstatus: compute: %v\n", err)
		return 2
	}
	out, err := json.Marshal(result{Status: res.Status.String(), Message: res.Message})
	if err != nil {
		fmt.Fprintf(stderr, "kstatus: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, string(out))
	return 0
}

// readFile reads one object from JSON or YAML (YAML is a superset of JSON).
func readFile(path string) (*unstructured.Unstructured, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	jsonData, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// utiljson keeps whole numbers as int64, as the API machinery does:
	// kstatus reads metadata.generation with NestedInt64 and would fail on
	// the float64 that encoding/json produces.
	var content map[string]interface{}
	if err := utiljson.Unmarshal(jsonData, &content); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if content == nil {
		return nil, fmt.Errorf("%s: no object", path)
	}
	return &unstructured.Unstructured{Object: content}, nil
}

func readLive(kubeconfig, namespace, name string, timeout time.Duration) (*unstructured.Unstructured, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = timeout
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return client.Resource(modelDeployments).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
}
