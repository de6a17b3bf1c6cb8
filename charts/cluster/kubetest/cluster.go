// Package kubetest runs a throwaway Kubernetes control plane for tests: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler built from the
// pinned Kubernetes modules, and kwok playing the kubelet of one fake node.
// No container ever runs: kwok writes the status a kubelet would report. The
// programs listen on free loopback ports and keep their data, keys and logs in
// one temporary directory, which Stop removes.
package kubetest

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// stopGrace is how long a program gets to exit after SIGTERM before it is killed.
const stopGrace = 10 * time.Second

// The simulated addresses come from the documentation ranges (RFC 5737),
// which route nowhere: nothing ever connects to them, they only fill status
// fields and the Services' cluster IPs.
const (
	serviceIPRange = "203.0.113.0/24"
	podIPRange     = "198.51.100.0/24"
	nodeIP         = "192.0.2.1"
)

// NodeName is the fake node's name.
const NodeName = "kwok-node"

// FailingJobsNamespace is the namespace where the Pods of a Job exit 1 (they
// exit 0 everywhere else), for tests of what a failed Job does.
const FailingJobsNamespace = "jobs-fail"

// Cluster is a running control plane.
type Cluster struct {
	// Kubeconfig is the path of a kubeconfig file for the administrator
	// (group system:masters), for programs such as helm.
	Kubeconfig string
	// Config is the administrator's client configuration.
	Config *rest.Config
	// Client is the administrator's client.
	Client kubernetes.Interface

	dir   string
	helm  string     // the helm binary
	procs []*process // in the order they started
}

// Start starts a control plane in a new temporary directory and returns once
// the API server is ready, the controllers and the scheduler are healthy, the
// fake node is Ready and the default namespace has its ServiceAccount. On
// error it stops whatever it started and removes the directory.
func Start(ctx context.Context, bins Binaries) (_ *Cluster, err error) {
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	c := &Cluster{dir: dir, helm: bins.Helm}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("start cluster: %w", err), c.Stop())
		}
	}()

	creds, err := newCredentials(dir)
	if err != nil {
		return nil, err
	}
	etcdURL, err := c.startEtcd(ctx, bins.Etcd)
	if err != nil {
		return nil, err
	}
	if err := c.startAPIServer(ctx, bins.APIServer, etcdURL, creds); err != nil {
		return nil, err
	}
	if err := c.startControllerManager(ctx, bins.ControllerManager, creds); err != nil {
		return nil, err
	}
	if err := c.startScheduler(ctx, bins.Scheduler); err != nil {
		return nil, err
	}
	if err := c.startKwok(ctx, bins.Kwok); err != nil {
		return nil, err
	}
	// The ServiceAccount admission plugin refuses Pods in a namespace until the
	// controller manager has made its "default" ServiceAccount.
	if err := c.waitForDefaultServiceAccount(ctx, "default"); err != nil {
		return nil, err
	}
	return c, nil
}

// Dir is the directory holding the cluster's data, keys and logs.
func (c *Cluster) Dir() string { return c.dir }

// Stop stops every program, the newest first, and removes the directory.
func (c *Cluster) Stop() error {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(stopGrace)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("stop cluster: %w", err)
	}
	return nil
}

// process returns the program called name.
func (c *Cluster) process(name string) *process {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	panic("kubetest: no program " + name)
}

// Running names the programs that have not exited.
func (c *Cluster) Running() []string {
	var names []string
	for _, p := range c.procs {
		if !p.exited() {
			names = append(names, p.name)
		}
	}
	return names
}

// WriteLogs writes the last lines of every program's log to w, for a failed run.
func (c *Cluster) WriteLogs(w io.Writer, lines int) {
	for _, p := range c.procs {
		fmt.Fprintf(w, "==== %s (last %d lines of %s)\n%s\n", p.name, lines, p.logPath, p.tail(lines))
	}
}

// startEtcd starts a single-member etcd and returns its client URL.
func (c *Cluster) startEtcd(ctx context.Context, bin string) (string, error) {
	dataDir := filepath.Join(c.dir, "etcd")
	args := func(ports []int) []string {
		client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		// A retry after a port clash starts from an empty data directory.
		_ = os.RemoveAll(dataDir)
		return []string{
			"--name=kubetest",
			"--data-dir=" + dataDir,
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=kubetest=" + peer,
			// The data is thrown away at the end: no fsync keeps a loaded machine fast.
			"--unsafe-no-fsync",
			"--log-level=warn",
		}
	}
	ready := func(ctx context.Context, ports []int) error {
		return getOK(ctx, httpClient(nil), "http://127.0.0.1:"+strconv.Itoa(ports[0])+"/health", "", `"health":"true"`)
	}
	ports, err := c.serve(ctx, "etcd", bin, 2, args, ready)
	if err != nil {
		return "", err
	}
	return "http://127.0.0.1:" + strconv.Itoa(ports[0]), nil
}

// startAPIServer starts kube-apiserver with RBAC, the static administrator
// token and the default admission plugins (PodSecurity among them), and
// writes the administrator's kubeconfig.
func (c *Cluster) startAPIServer(ctx context.Context, bin, etcdURL string, creds credentials) error {
	certDir := filepath.Join(c.dir, "kube-apiserver")
	args := func(ports []int) []string {
		return []string{
			"--etcd-servers=" + etcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(ports[0]),
			// A self-signed serving certificate, made at start.
			"--cert-dir=" + certDir,
			"--token-auth-file=" + creds.tokenFile,
			"--authorization-mode=RBAC",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + creds.saPublicKey,
			"--service-account-signing-key-file=" + creds.saPrivateKey,
			"--service-cluster-ip-range=" + serviceIPRange,
			// Endpoints for the "kubernetes" Service may not be loopback addresses.
			"--endpoint-reconciler-type=none",
			"--profiling=false",
		}
	}
	var cfg *rest.Config
	ready := func(ctx context.Context, ports []int) error {
		ca, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
		if err != nil {
			return err // not written yet
		}
		cfg = &rest.Config{
			Host:            "https://127.0.0.1:" + strconv.Itoa(ports[0]),
			BearerToken:     creds.token,
			TLSClientConfig: rest.TLSClientConfig{CAData: ca},
			// The default 5 requests a second slows the tests' polling.
			QPS:   100,
			Burst: 200,
		}
		client, err := rest.HTTPClientFor(cfg)
		if err != nil {
			return err
		}
		return getOK(ctx, client, cfg.Host+"/readyz", creds.token, "ok")
	}
	if _, err := c.serve(ctx, "kube-apiserver", bin, 1, args, ready); err != nil {
		return err
	}

	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	c.Config, c.Client = cfg, client
	c.Kubeconfig = filepath.Join(c.dir, "kubeconfig")
	return writeKubeconfig(c.Kubeconfig, cfg)
}

// startControllerManager starts kube-controller-manager: Deployments become
// ReplicaSets and Pods, the HPA scales, namespaces get their ServiceAccount,
// the garbage collector removes what an owner leaves.
func (c *Cluster) startControllerManager(ctx context.Context, bin string, creds credentials) error {
	certDir := filepath.Join(c.dir, "kube-controller-manager")
	args := func(ports []int) []string {
		return append(c.componentArgs(certDir, ports[0]),
			"--service-account-private-key-file="+creds.saPrivateKey,
			"--root-ca-file="+filepath.Join(c.dir, "kube-apiserver", "apiserver.crt"),
			// Without metrics the HPA can only enforce its bounds; checking every
			// 2 s rather than 15 s gets it there sooner.
			"--horizontal-pod-autoscaler-sync-period=2s",
		)
	}
	ready := componentReady(certDir, "kube-controller-manager.crt")
	if _, err := c.serve(ctx, "kube-controller-manager", bin, 1, args, ready); err != nil {
		return err
	}
	return nil
}

// startScheduler starts kube-scheduler, which binds Pods to the fake node
// (node selectors, tolerations and spread constraints included).
func (c *Cluster) startScheduler(ctx context.Context, bin string) error {
	certDir := filepath.Join(c.dir, "kube-scheduler")
	args := func(ports []int) []string { return c.componentArgs(certDir, ports[0]) }
	ready := componentReady(certDir, "kube-scheduler.crt")
	if _, err := c.serve(ctx, "kube-scheduler", bin, 1, args, ready); err != nil {
		return err
	}
	return nil
}

// serve starts a program that listens on n ports (see startServing) and keeps
// it for Stop.
func (c *Cluster) serve(ctx context.Context, name, bin string, n int,
	args func(ports []int) []string, ready func(ctx context.Context, ports []int) error,
) ([]int, error) {
	p, ports, err := startServing(ctx, c.dir, name, bin, n, args, ready)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return ports, nil
}

// componentArgs are the flags kube-controller-manager and kube-scheduler share.
func (c *Cluster) componentArgs(certDir string, port int) []string {
	return []string{
		"--kubeconfig=" + c.Kubeconfig,
		// No --authentication-kubeconfig: /healthz, all the tests ask of
		// them, is open, and the API server has no client CA to delegate to.
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + certDir,
		"--leader-elect=false",
		"--profiling=false",
	}
}

// componentReady checks /healthz of kube-controller-manager or kube-scheduler,
// trusting the self-signed certificate it wrote into certDir.
func componentReady(certDir, certFile string) func(context.Context, []int) error {
	return func(ctx context.Context, ports []int) error {
		ca, err := os.ReadFile(filepath.Join(certDir, certFile))
		if err != nil {
			return err // not written yet
		}
		return getOK(ctx, httpClient(ca), "https://127.0.0.1:"+strconv.Itoa(ports[0])+"/healthz", "", "ok")
	}
}

//go:embed kwok-stages.yaml
var kwokStages []byte

// startKwok starts kwok, registers the fake node it manages and waits until
// the node is Ready and schedulable.
func (c *Cluster) startKwok(ctx context.Context, bin string) error {
	config := filepath.Join(c.dir, "kwok.yaml")
	if err := os.WriteFile(config, kwokStages, 0o600); err != nil {
		return fmt.Errorf("kwok: %w", err)
	}
	p, err := startProcess(c.dir, "kwok", bin, []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--config=" + config,
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--node-lease-duration-seconds=40",
		"--node-ip=" + nodeIP,
		"--cidr=" + podIPRange,
	})
	if err != nil {
		return err
	}
	c.procs = append(c.procs, p)
	if err := c.createNode(ctx); err != nil {
		return err
	}
	return waitFor(ctx, p, "a Ready node", c.nodeSchedulable)
}

// kwokNodeAnnotation marks the nodes kwok manages.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// createNode registers the fake node, labelled as a kubelet labels its node.
func (c *Cluster) createNode(ctx context.Context) error {
	node := &corev1.Node{}
	node.Name = NodeName
	node.Annotations = map[string]string{kwokNodeAnnotation: "fake"}
	node.Labels = map[string]string{
		"kubernetes.io/hostname":      NodeName,
		"kubernetes.io/os":            "linux",
		"kubernetes.io/arch":          "amd64",
		"topology.kubernetes.io/zone": "zone-a",
		"type":                        "kwok",
	}
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create node: %w", err)
	}
	return nil
}

// nodeSchedulable succeeds once the fake node is Ready and carries no taint
// that keeps Pods off it (the node lifecycle controller taints it until then).
func (c *Cluster) nodeSchedulable(ctx context.Context) error {
	node, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	ready := false
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		return errors.New("node not Ready")
	}
	for _, taint := range node.Spec.Taints {
		if taint.Effect == corev1.TaintEffectNoSchedule || taint.Effect == corev1.TaintEffectNoExecute {
			return fmt.Errorf("node tainted %s", taint.ToString())
		}
	}
	return nil
}

// waitForDefaultServiceAccount waits until namespace has its "default" ServiceAccount.
func (c *Cluster) waitForDefaultServiceAccount(ctx context.Context, namespace string) error {
	// A missing ServiceAccount is the controller manager's doing.
	return waitFor(ctx, c.process("kube-controller-manager"), "the default ServiceAccount in "+namespace, func(ctx context.Context) error {
		_, err := c.Client.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// writeKubeconfig writes a kubeconfig for cfg's server, CA and token.
func writeKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "admin"}
	kc.CurrentContext = "kubetest"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	return nil
}
