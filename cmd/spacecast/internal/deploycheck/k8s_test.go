package deploycheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type k8sEnvVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		ConfigMapKeyRef *k8sKeyRef `yaml:"configMapKeyRef"`
		SecretKeyRef    *k8sKeyRef `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type k8sKeyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name    string      `yaml:"name"`
	Image   string      `yaml:"image"`
	Command []string    `yaml:"command"`
	Env     []k8sEnvVar `yaml:"env"`
	EnvFrom []any       `yaml:"envFrom"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
}

// k8sObject holds the fields of the kinds the manifests use.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Selector any `yaml:"selector"` // Deployment: {matchLabels}; Service: labels
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
	// Kustomization
	Resources          []string `yaml:"resources"`
	ConfigMapGenerator []struct {
		Name  string   `yaml:"name"`
		Files []string `yaml:"files"`
	} `yaml:"configMapGenerator"`
}

// k8sFile parses every YAML document of one manifest file.
func k8sFile(t testing.TB, rel string) []k8sObject {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader([]byte(readRepoFile(t, rel))))
	var out []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if o.Kind == "" || o.APIVersion == "" {
			t.Fatalf("%s: a document without apiVersion/kind", rel)
		}
		if o.Metadata.Name == "" && o.Kind != "Kustomization" {
			t.Fatalf("%s: %s without metadata.name", rel, o.Kind)
		}
		out = append(out, o)
	}
}

// k8sManifests returns the objects of the files kustomization.yaml applies.
func k8sManifests(t testing.TB) []k8sObject {
	t.Helper()
	kust := k8sFile(t, "deploy/k8s/kustomization.yaml")
	if len(kust) != 1 || kust[0].Kind != "Kustomization" {
		t.Fatal("deploy/k8s/kustomization.yaml is not one Kustomization")
	}
	var out []k8sObject
	for _, r := range kust[0].Resources {
		out = append(out, k8sFile(t, "deploy/k8s/"+r)...)
	}
	for _, g := range kust[0].ConfigMapGenerator {
		out = append(out, k8sObject{Kind: "ConfigMap", Metadata: struct {
			Name string `yaml:"name"`
		}{g.Name}})
	}
	return out
}

func k8sSpacecastDeployments(t testing.TB) map[string]k8sObject {
	out := map[string]k8sObject{}
	for _, o := range k8sManifests(t) {
		if o.Kind == "Deployment" && len(o.Spec.Template.Spec.Containers) > 0 && o.Spec.Template.Spec.Containers[0].Image == "spacecast" {
			out[o.Metadata.Name] = o
		}
	}
	return out
}

// k8sNotDeployed lists binaries of the binaries table that deploy/k8s does not run yet.
var k8sNotDeployed = map[string]string{
	"sfu": "each node needs its own public media address and signaling URL (deploy/README.md)",
}

// TestK8sManifestsParse: every YAML file under deploy/k8s parses, and kustomization.yaml
// applies all of them but the example Secret.
func TestK8sManifestsParse(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy", "k8s")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	kust := k8sFile(t, "deploy/k8s/kustomization.yaml")[0]
	for _, f := range files {
		base := filepath.Base(f)
		if objs := k8sFile(t, "deploy/k8s/"+base); len(objs) == 0 {
			t.Errorf("%s has no documents", base)
		}
		listed := slices.Contains(kust.Resources, base)
		switch base {
		case "kustomization.yaml":
		case "secret.example.yaml":
			if listed {
				t.Error("kustomization.yaml applies the example Secret")
			}
		default:
			if !listed {
				t.Errorf("%s is not in kustomization.yaml's resources", base)
			}
		}
	}
	for _, r := range kust.Resources {
		if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
	for _, g := range kust.ConfigMapGenerator {
		for _, f := range g.Files {
			_, path, _ := strings.Cut(f, "=")
			if _, err := os.Stat(filepath.Join(dir, path)); err != nil {
				t.Errorf("configMapGenerator %s: %v", g.Name, err)
			}
		}
	}
}

// TestK8sDeploymentsMatchBinaries checks each Spacecast Deployment like the compose services:
// its settings (resolved from the ConfigMap and the example Secret) are the ones its binary
// reads and accepts; probes hit /readyz and /healthz on the port it listens on; Services
// select it; the keys URL names the keys Service.
func TestK8sDeploymentsMatchBinaries(t *testing.T) {
	objs := k8sManifests(t)
	configMaps := map[string]map[string]string{}
	services := map[string]k8sObject{}
	for _, o := range objs {
		switch o.Kind {
		case "ConfigMap":
			configMaps[o.Metadata.Name] = o.Data
		case "Service":
			services[o.Metadata.Name] = o
		case "Secret":
			t.Errorf("the kustomization applies Secret %s: secrets must be created by the operator", o.Metadata.Name)
		}
	}
	secrets := map[string]map[string]string{}
	for _, o := range k8sFile(t, "deploy/k8s/secret.example.yaml") {
		secrets[o.Metadata.Name] = o.StringData
	}
	deps := k8sSpacecastDeployments(t)
	if len(deps) == 0 {
		t.Fatal("no Deployment runs the spacecast image")
	}
	for name, d := range deps {
		t.Run(name, func(t *testing.T) {
			c := d.Spec.Template.Spec.Containers[0]
			if len(c.Command) != 1 || c.Command[0] != name {
				t.Errorf("runs %v; want [%q]", c.Command, name)
			}
			if len(c.EnvFrom) > 0 {
				t.Error("envFrom hands the binary settings it may not read: list each variable")
			}
			env := map[string]string{}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom == nil:
					env[e.Name] = e.Value
				case e.ValueFrom.ConfigMapKeyRef != nil:
					ref := e.ValueFrom.ConfigMapKeyRef
					v, ok := configMaps[ref.Name][ref.Key]
					if !ok {
						t.Errorf("%s: ConfigMap %s has no key %s", e.Name, ref.Name, ref.Key)
					}
					env[e.Name] = v
				case e.ValueFrom.SecretKeyRef != nil:
					ref := e.ValueFrom.SecretKeyRef
					v, ok := secrets[ref.Name][ref.Key]
					if !ok {
						t.Errorf("%s: Secret %s (secret.example.yaml) has no key %s", e.Name, ref.Name, ref.Key)
					}
					env[e.Name] = v
				}
			}
			for _, p := range envProblems(name, env) {
				t.Error(p)
			}
			addr := env["SPACECAST_HTTP_ADDR"]
			if addr == "" {
				addr = ":8080"
			}
			_, listen := hostPort(t, addr)
			portName := ""
			for _, p := range c.Ports {
				if fmt.Sprint(p.ContainerPort) == listen {
					portName = p.Name
				}
			}
			if portName == "" {
				t.Errorf("no containerPort %s (SPACECAST_HTTP_ADDR=%s)", listen, addr)
			}
			for _, pr := range []struct {
				kind  string
				probe *k8sProbe
				path  string
			}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
				if pr.probe == nil || pr.probe.HTTPGet == nil {
					t.Errorf("no %s httpGet", pr.kind)
					continue
				}
				if port := fmt.Sprint(pr.probe.HTTPGet.Port); pr.probe.HTTPGet.Path != pr.path || (port != portName && port != listen) {
					t.Errorf("%s probes %s on %s; want %s on %s", pr.kind, pr.probe.HTTPGet.Path, port, pr.path, listen)
				}
			}
			svc, ok := services[name]
			if !ok {
				t.Fatalf("no Service %s", name)
			}
			sel, _ := svc.Spec.Selector.(map[string]any)
			for k, v := range sel {
				if d.Spec.Template.Metadata.Labels[k] != fmt.Sprint(v) {
					t.Errorf("Service %s selects %s=%v, which the pods do not carry", name, k, v)
				}
			}
			if len(sel) == 0 {
				t.Errorf("Service %s has no selector", name)
			}
			if u := env["SPACECAST_KEYS_URL"]; u != "" {
				pu, err := url.Parse(u)
				ks, ok := services[pu.Hostname()]
				if err != nil || !ok || pu.Hostname() != "keys" || len(ks.Spec.Ports) == 0 || fmt.Sprint(ks.Spec.Ports[0].Port) != pu.Port() {
					t.Errorf("SPACECAST_KEYS_URL=%q does not name the keys Service and its port", u)
				}
			}
		})
	}
	for name := range binaries {
		_, ok := deps[name]
		if _, skipped := k8sNotDeployed[name]; ok == skipped {
			t.Errorf("binary %s: Deployment in deploy/k8s %v, listed in k8sNotDeployed %v", name, ok, skipped)
		}
	}
}
