//! What one node receives ([`NodeView`]) and how it sees one peer ([`PeerView`]), derived
//! on demand from the structures the compile shares between nodes.

use super::*;
use crate::Text;

/// What one node receives. Borrowed from the [`Compiled`] it came from; peers are kept as a
/// set and detailed ([`PeerView`]) only when iterated.
#[derive(Debug)]
pub struct NodeView<'a> {
    pub(super) compiled: &'a Compiled,
    pub(super) id: NodeId,
    pub(super) node: &'a NodeInfo,
    pub(super) primary_routes: Vec<IpNet>,
    pub(super) rules: Vec<FilterRule>,
    /// One bit per node id.
    pub(super) peers: Vec<u64>,
}

impl<'a> NodeView<'a> {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// The packet filter, in wire order.
    pub fn packet_filter_rules(&self) -> &[FilterRule] {
        &self.rules
    }

    /// The node's addresses, IPv4 first, always two: a family the node has no address of
    /// (an IPv4-only or IPv6-only node) is given as that family's unspecified address
    /// (`0.0.0.0`, `::`), which is never a real address. Prefer [`NodeView::addrs`].
    pub fn addresses(&self) -> [IpAddr; 2] {
        self.node.ips_or_unspecified()
    }

    /// The addresses the node has (one or two), IPv4 first.
    pub fn addrs(&self) -> Vec<IpAddr> {
        self.node.ips()
    }

    /// The node's own AllowedIPs: its addresses, then the routes it serves.
    pub fn allowed_ips(&self) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self.addrs().into_iter().map(IpNet::from).collect();
        out.extend(self.node.served.iter().copied());
        out
    }

    /// Subnet routes this node is the primary router for.
    pub fn primary_routes(&self) -> &[IpNet] {
        &self.primary_routes
    }

    /// Visible peers, in name order.
    pub fn peers(&self) -> impl Iterator<Item = PeerView<'a>> + '_ {
        let compiled = self.compiled;
        let viewer = self.id;
        crate::bits::iter_bits(&self.peers).filter_map(move |p| compiled.peer_view(viewer, p))
    }

    /// How many peers the node sees.
    pub fn peer_count(&self) -> usize {
        self.peers.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The SSH rules, in the order the node evaluates them (first match wins).
    pub fn ssh_rules(&self) -> Vec<SshRule> {
        self.ssh_node_rules().into_iter().map(|r| r.rule).collect()
    }

    /// The SSH rules with the policy rule each came from.
    pub(super) fn ssh_node_rules(&self) -> Vec<crate::ssh::NodeSshRule> {
        self.compiled.ssh.node_rules(&self.compiled.table, self.id)
    }

    /// The node's capability map: node attributes, tailnet options and (unless turned off)
    /// the capabilities the control plane derives from tailnet state.
    pub fn cap_map(&self) -> CapMap {
        self.compiled.caps.cap_map(&self.compiled.table, self.id)
    }

    /// True when `disable-ipv4` took the node's IPv4 address away: the wire form then lists
    /// only its IPv6 address, and the node sees its peers over IPv6 only.
    pub fn ipv4_disabled(&self) -> bool {
        self.compiled.caps.ipv4_disabled(self.id)
    }

    /// The wire form's `addresses`, `allowed_ips` and `primary_routes`.
    pub(super) fn own_wire(&self) -> (Vec<String>, Vec<String>, Vec<String>) {
        let strings = |nets: &[IpNet]| nets.iter().map(ToString::to_string).collect::<Vec<_>>();
        let mut addresses: Vec<String> = self.node.hosts.iter().map(|h| h.to_string()).collect();
        let mut allowed_ips = strings(&self.allowed_ips());
        if let Some(v4) = self.node.v4_host().filter(|_| self.ipv4_disabled()) {
            addresses.retain(|a| **a != **v4);
            allowed_ips.retain(|a| **a != **v4);
        }
        (addresses, allowed_ips, strings(&self.primary_routes))
    }

    /// The owned wire form (the corpus' per-node document).
    pub fn to_wire(&self) -> NodeOutput {
        let (addresses, allowed_ips, primary_routes) = self.own_wire();
        NodeOutput {
            packet_filter_rules: self.rules.clone(),
            ssh_rules: self.ssh_rules(),
            addresses,
            allowed_ips,
            primary_routes,
            cap_map: Some(self.cap_map()),
            peers: self
                .peers()
                .map(|p| (p.node.name.clone(), p.to_wire()))
                .collect::<BTreeMap<_, _>>(),
        }
    }
}

/// How a node sees one peer.
#[derive(Debug)]
pub struct PeerView<'a> {
    pub(super) node: &'a NodeInfo,
    pub(super) routes: Vec<IpNet>,
    /// The families the viewer or the peer has no address of ([`HIDE_V4`], [`HIDE_V6`]:
    /// none assigned, or `disable-ipv4`): the peer's addresses of those families are left out.
    pub(super) hide: u8,
}

impl PeerView<'_> {
    /// The peer's name.
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// The peer's addresses, IPv4 first, always two: a family the peer has no address of is
    /// given as that family's unspecified address (`0.0.0.0`, `::`), never a real address.
    /// Prefer [`PeerView::addrs`].
    pub fn addresses(&self) -> [IpAddr; 2] {
        self.node.ips_or_unspecified()
    }

    /// The addresses the peer has (one or two), IPv4 first, whether or not the viewer can
    /// use them (see [`PeerView::allowed_ips`]).
    pub fn addrs(&self) -> Vec<IpAddr> {
        self.node.ips()
    }

    /// Subnet routes this peer carries for the viewing node.
    pub fn primary_routes(&self) -> &[IpNet] {
        &self.routes
    }

    /// True when the peer is an exit node (its exit routes are in its AllowedIPs).
    pub fn is_exit_node(&self) -> bool {
        self.node.exit
    }

    /// The peer's AllowedIPs for the viewing node: its addresses of the families both have
    /// (as the wire form), carried routes, exit routes.
    pub fn allowed_ips(&self) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self.shown_addrs().into_iter().map(IpNet::from).collect();
        out.extend(self.routes.iter().copied());
        out.extend(
            self.node
                .served
                .iter()
                .filter(|r| routes::is_exit_route(r))
                .copied(),
        );
        out
    }

    /// The peer's addresses the viewer sees: those of the families both have.
    pub(super) fn shown_addrs(&self) -> Vec<IpAddr> {
        self.node.addrs().filter(|ip| self.shows(ip)).collect()
    }

    /// True when the viewer sees the peer's address `ip` (both have its family).
    pub(super) fn shows(&self, ip: &IpAddr) -> bool {
        match ip {
            IpAddr::V4(_) => self.hide & HIDE_V4 == 0,
            IpAddr::V6(_) => self.hide & HIDE_V6 == 0,
        }
    }

    /// The owned wire form.
    pub fn to_wire(&self) -> PeerOutput {
        // The same strings as `allowed_ips()` spelled out, without formatting the peer's own
        // addresses again (a map holds tens of thousands of peers).
        let text = |net: &IpNet| Text::from(net.to_string());
        let mut allowed_ips: Vec<Text> = self
            .node
            .addrs()
            .zip(self.node.hosts.iter())
            .filter(|(ip, _)| self.shows(ip))
            .map(|(_, host)| host.clone())
            .collect();
        allowed_ips.extend(self.routes.iter().map(text));
        allowed_ips.extend(
            self.node
                .served
                .iter()
                .filter(|r| routes::is_exit_route(r))
                .map(text),
        );
        PeerOutput {
            allowed_ips,
            primary_routes: self.routes.iter().map(text).collect(),
            // Tailscale marks exit nodes as suggestible to every peer.
            cap_map: self.node.exit.then(|| {
                CapMap::from([("suggest-exit-node".to_string(), serde_json::Value::Null)])
            }),
        }
    }
}
