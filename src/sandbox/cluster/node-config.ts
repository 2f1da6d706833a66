// The configuration files of one node: containerd, the CNI network, the kubelet and kube-proxy.
// Every path a daemon writes to is under the node's directory or the node's own tmpfs mounts
// (/run, /var/lib, /var/log inside its mount namespace), never the host's.
import { stringify } from "yaml";

export interface NodeConfigInput {
  readonly name: string;
  /** The node's directory in the run directory. */
  readonly dir: string;
  readonly address: string;
  readonly podCidrs: readonly string[];
  readonly clusterCidr: string;
  /** Routes pods get instead of a default route (the sandbox has none). */
  readonly podRoutes: readonly string[];
  readonly cgroupRoot: string;
  readonly caFile: string;
  readonly containerdSocket: string;
  readonly runc: string;
  readonly cniBinDir: string;
  readonly pauseImage: string;
  readonly clusterDns: string;
  readonly clusterDomain: string;
}

/** containerd 2.4 (config version 4) for the CRI, cgroupfs on a cgroup v1 host without CAP_SYS_RESOURCE. */
export function containerdConfig(c: NodeConfigInput): string {
  const q = (value: string): string => JSON.stringify(value);
  return `version = 4
root = ${q(`${c.dir}/containerd/root`)}
state = ${q(`${c.dir}/containerd/state`)}
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs"]

[plugins.'io.containerd.server.v1.grpc']
  address = ${q(c.containerdSocket)}
[plugins.'io.containerd.server.v1.ttrpc']
  address = ${q(`${c.containerdSocket}.ttrpc`)}
# Would create /opt/containerd on the host.
[plugins.'io.containerd.internal.v1.opt']
  path = ${q(`${c.dir}/containerd/opt`)}
[plugins.'io.containerd.image-verifier.v1.bindir']
  bin_dir = ${q(`${c.dir}/containerd/image-verifiers`)}

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = ${q(c.pauseImage)}

[plugins.'io.containerd.cri.v1.runtime']
  # runc cannot raise oom_score_adj here: root lacks CAP_SYS_RESOURCE on these machines.
  restrict_oom_score_adj = true
  # cgroup v1 without a hugetlb hierarchy.
  tolerate_missing_hugetlb_controller = true
  disable_hugetlb_controller = true
  disable_apparmor = true
  # Pod network namespaces are mounted under the state directory, not the host's /run/netns.
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  enable_criu = false
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = ${q(c.runc)}
        Root = ${q(`${c.dir}/runc`)}
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [${q(c.cniBinDir)}]
    conf_dir = ${q(`${c.dir}/cni`)}

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
`;
}

/** bridge (cni0, the pods' gateway, masquerading out of the pod range) + portmap. */
export function cniConfig(c: NodeConfigInput): string {
  return JSON.stringify(
    {
      cniVersion: "1.0.0",
      name: "sandbox",
      plugins: [
        {
          type: "bridge",
          bridge: "cni0",
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: {
            type: "host-local",
            // One range set per family: every pod gets an IPv4 and an IPv6 address.
            ranges: c.podCidrs.map((subnet) => [{ subnet }]),
            // No default route, as nowhere in the sandbox: only what a pod may reach.
            routes: c.podRoutes.map((dst) => ({ dst })),
          },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

export function kubeletConfig(c: NodeConfigInput): string {
  return stringify({
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    // kubelet 1.36 refuses cgroup v1 unless told otherwise; these hosts are cgroup v1 (hybrid).
    failCgroupV1: false,
    cgroupDriver: "cgroupfs",
    // Pod cgroups under a root of this node's own, so nodes and runs never share one.
    cgroupRoot: `/${c.cgroupRoot}`,
    containerRuntimeEndpoint: `unix://${c.containerdSocket}`,
    // Otherwise the kubelet creates /usr/libexec/kubernetes on the host.
    volumePluginDir: `${c.dir}/volume-plugins`,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: c.caFile },
    },
    authorization: { mode: "Webhook" },
    clusterDNS: [c.clusterDns],
    clusterDomain: c.clusterDomain,
    // Never the host's resolver: pods with dnsPolicy Default (CoreDNS itself) get this one.
    resolvConf: `${c.dir}/resolv.conf`,
    failSwapOn: false,
    // A busy dev machine must not evict the sandbox's pods or collect its imported images.
    evictionHard: { "memory.available": "1Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%", "imagefs.available": "1%" },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    registerNode: true,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    rotateCertificates: false,
    serverTLSBootstrap: false,
    // The proxy pods set this per pod (their own network namespace).
    allowedUnsafeSysctls: ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"],
    nodeStatusUpdateFrequency: "5s",
    shutdownGracePeriod: "0s",
  });
}

export function kubeProxyConfig(c: NodeConfigInput, kubeconfig: string): string {
  return stringify({
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    mode: "nftables",
    clientConnection: { kubeconfig },
    hostnameOverride: c.name,
    clusterCIDR: c.clusterCidr,
    bindAddress: c.address,
    healthzBindAddress: "127.0.0.1:10256",
    metricsBindAddress: "127.0.0.1:10249",
    // The conntrack table size is global (the host's); timeouts left as they are.
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: "0s", tcpCloseWaitTimeout: "0s" },
  });
}

export const NODE_RESOLV_CONF = "# sandbox node: no resolver\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n";
