//! An inventory's invariants, checked once when it is built: unique names and addresses,
//! users and owners that exist, a registration order listing each node once, Services.

use super::*;

impl Inventory {
    pub(super) fn check_services(&self, index: &Index) -> Vec<InventoryError> {
        use InventoryErrorKind as K;
        let mut errors = Vec::new();
        let mut err = |kind, message: String| errors.push(InventoryError::new(kind, message));
        let node_addresses: HashSet<IpAddr> =
            self.nodes.iter().flat_map(|n| n.addresses()).collect();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut vips: HashMap<IpAddr, usize> = HashMap::new();
        for (i, svc) in self.services.iter().enumerate() {
            if svc.name.strip_prefix("svc:").is_none_or(str::is_empty) {
                err(
                    K::InvalidService,
                    format!("services[{i}].name: invalid service name \"{}\" (services look like \"svc:name\")", svc.name),
                );
            } else if let Some(first) = names.insert(&svc.name, i) {
                err(
                    K::InvalidService,
                    format!(
                        "services[{i}].name: duplicate service \"{}\" (also services[{first}])",
                        svc.name
                    ),
                );
            }
            for vip in svc.vips() {
                let addr = vip.addr();
                if node_addresses.contains(&addr) {
                    err(
                        K::DuplicateAddress,
                        format!(
                            "services[{i}]: address {addr} of \"{}\" is a node's address",
                            svc.name
                        ),
                    );
                } else if let Some(first) = vips.insert(addr, i) {
                    err(
                        K::DuplicateAddress,
                        format!(
                            "services[{i}]: address {addr} is already used by services[{first}]"
                        ),
                    );
                }
            }
            for (field, list) in [
                ("hosts", &svc.hosts),
                ("approved_hosts", &svc.approved_hosts),
            ] {
                for (j, host) in list.iter().enumerate() {
                    if index.node_by_name.get(host, self.name_of()).is_none() {
                        err(
                            K::UnknownNode,
                            format!("services[{i}].{field}[{j}]: unknown node \"{host}\" (not among nodes)"),
                        );
                    }
                }
            }
        }
        errors
    }

    /// Every problem, in document order, and the lookups (valid only when there is none).
    /// The nodes' addresses are checked beside the rest of each node (on a second core for
    /// a large inventory), their problems merged back in node order.
    /// `users`: the users' lookup when they were checked already.
    pub(super) fn check(
        &self,
        users: Option<Arc<crate::hash::Map<String, usize>>>,
    ) -> (Index, Vec<InventoryError>) {
        let mut errors = Vec::new();
        let user_by_email = match users {
            Some(known) => known,
            None => Arc::new(self.check_users(&mut errors)),
        };
        let ((mut node_by_name, nodes), addresses) = match self.nodes.len() > 4096 {
            true => crate::par::join(
                || self.check_nodes(&user_by_email),
                || self.check_addresses(),
            ),
            false => (self.check_nodes(&user_by_email), self.check_addresses()),
        };
        // Both lists are in node order; a node's own problems come before its addresses'.
        let mut addresses = addresses.into_iter().peekable();
        for (i, error) in nodes {
            while let Some((_, e)) = addresses.next_if(|(j, _)| *j < i) {
                errors.push(e);
            }
            errors.push(error);
        }
        errors.extend(addresses.map(|(_, e)| e));
        let ranks_are_positions = self.check_order(&mut node_by_name, &mut errors);
        let index = Index {
            node_by_name,
            user_by_email,
            ranks_are_positions,
        };
        (index, errors)
    }

    /// A node's name, by position (what [`names::NameIndex`] compares against).
    pub(super) fn name_of<'a>(&'a self) -> impl Fn(usize) -> &'a str + Copy + 'a {
        |p| self.nodes.get(p).map_or("", |n| n.name.as_str())
    }

    pub(super) fn check_users(
        &self,
        errors: &mut Vec<InventoryError>,
    ) -> crate::hash::Map<String, usize> {
        use InventoryErrorKind as K;
        let mut err = |kind, message: String| errors.push(InventoryError::new(kind, message));
        let mut user_by_email =
            crate::hash::Map::with_capacity_and_hasher(self.users.len(), Default::default());
        let mut user_ids: crate::hash::Map<u64, usize> = crate::hash::Map::default();
        // Logins compared as the policy compares them, without case: two users whose emails
        // differ only in case would be one user to every rule naming either (a grant to
        // alice@ reached Alice@'s devices).
        let mut folded: crate::hash::Map<String, usize> = crate::hash::Map::default();
        for (i, user) in self.users.iter().enumerate() {
            // Some recorded users have no login (an empty email); no node can name them as its
            // owner, but they are not an error.
            let duplicate = match user.email.is_empty() {
                true => None,
                false => {
                    let exact = user_by_email.insert(user.email.clone(), i);
                    let first = folded.entry(user.email.to_lowercase()).or_insert(i);
                    exact.or((*first != i).then_some(*first))
                }
            };
            if let Some(first) = duplicate {
                user_by_email.insert(user.email.clone(), first);
                err(
                    K::DuplicateUser,
                    format!(
                        "users[{i}].email: duplicate user \"{}\" (also users[{first}])",
                        user.email
                    ),
                );
            }
            if let Some(first) = user_ids.insert(user.id, i) {
                user_ids.insert(user.id, first);
                err(
                    K::DuplicateUser,
                    format!(
                        "users[{i}].id: duplicate user id {} (also users[{first}])",
                        user.id
                    ),
                );
            }
        }
        user_by_email
    }

    /// Each node's name, owner and tags: the nodes by name, and the problems with the
    /// position of the node they are about.
    pub(super) fn check_nodes(
        &self,
        user_by_email: &crate::hash::Map<String, usize>,
    ) -> (names::NameIndex, Vec<(usize, InventoryError)>) {
        use InventoryErrorKind as K;
        let mut errors = Vec::new();
        let mut node_by_name = names::NameIndex::with_capacity(self.nodes.len());
        let name_of = self.name_of();
        for (i, node) in self.nodes.iter().enumerate() {
            let mut err =
                |kind, message: String| errors.push((i, InventoryError::new(kind, message)));
            let name = &node.name;
            if name.trim().is_empty() {
                err(K::EmptyName, format!("nodes[{i}].name: empty node name"));
            } else if let Some((first, _)) = node_by_name.insert(name, i, name_of) {
                err(
                    K::DuplicateNodeName,
                    format!(
                        "nodes[{i}].name: duplicate node name \"{name}\" (also nodes[{first}])"
                    ),
                );
            }
            Self::check_node(i, node, user_by_email, &mut err);
        }
        (node_by_name, errors)
    }

    /// Node `i`'s owner, tags and addresses (its name is checked against the others'
    /// by the caller).
    pub(super) fn check_node(
        i: usize,
        node: &Node,
        user_by_email: &crate::hash::Map<String, usize>,
        err: &mut dyn FnMut(InventoryErrorKind, String),
    ) {
        use InventoryErrorKind as K;
        let name = &node.name;
        match (&node.user, node.tags.is_empty()) {
            (Some(owner), false) => err(
                K::Ownership,
                format!(
                    "nodes[{i}]: node \"{name}\" is owned by \"{owner}\" and also tagged; \
                     a tagged node has no owner (set \"user\" to null)"
                ),
            ),
            (None, true) => err(
                K::Ownership,
                format!("nodes[{i}]: node \"{name}\" has neither an owner (\"user\") nor tags"),
            ),
            // The engine names an owner by its login: a user whose login was emptied (an
            // upsert) while owning devices reads as the owner "" (the message said only
            // unknown user "").
            (Some(owner), true) if owner.is_empty() => err(
                K::UnknownOwner,
                format!(
                    "nodes[{i}].user: node \"{name}\" is owned by a user without a login; a \
                     user no policy can name can own no node (give the user its login, or \
                     remove or reassign its nodes first)"
                ),
            ),
            (Some(owner), true) if !user_by_email.contains_key(owner) => err(
                K::UnknownOwner,
                format!("nodes[{i}].user: unknown user \"{owner}\" (not among users)"),
            ),
            _ => {}
        }
        // A few tags are compared pairwise; a long list (hostile) through a set, so the
        // check stays linear.
        let mut seen_tags = (node.tags.len() > 16).then(HashSet::new);
        for (j, tag) in node.tags.iter().enumerate() {
            if tag.strip_prefix("tag:").is_none_or(str::is_empty) {
                err(
                    K::InvalidTag,
                    format!(
                        "nodes[{i}].tags[{j}]: invalid tag \"{tag}\" (tags look like \"tag:name\")"
                    ),
                );
            } else if aclc_policy::model::external_reference(tag).is_some() {
                // `tag://alias/name` is another tailnet's tag (declarative node sharing): a
                // node of this tailnet carrying it would take what rules give that tailnet.
                err(
                    K::InvalidTag,
                    format!(
                        "nodes[{i}].tags[{j}]: invalid tag \"{tag}\" (tag://alias/name names another tailnet's tag)"
                    ),
                );
            } else if match &mut seen_tags {
                Some(seen) => !seen.insert(tag),
                None => node.tags.iter().take(j).any(|t| t == tag),
            } {
                err(
                    K::InvalidTag,
                    format!("nodes[{i}].tags[{j}]: tag \"{tag}\" listed twice"),
                );
            }
        }
        // Addresses no device can have: as a node's, they would enter packet filters (`::`
        // and `0.0.0.0` mean "any" to many programs) or alias another node's IPv4 address
        // (an IPv4-mapped IPv6 address).
        let addresses = [
            ("ipv4", node.ipv4.map(IpAddr::V4)),
            ("ipv6", node.ipv6.map(IpAddr::V6)),
        ];
        for (field, address) in addresses {
            let Some(address) = address else { continue };
            if !device_address(address) {
                err(
                    K::InvalidAddress,
                    format!(
                        "nodes[{i}].{field}: {address} cannot be a device's address \
                         (unspecified, loopback, multicast, broadcast or IPv4-mapped)"
                    ),
                );
            }
        }
        // Routes as the corpus format reads them (`read::parse_prefix`), for inventories
        // built in code (the engine's records): a prefix with host bits set would be sent to
        // peers as it is, and never match an approval of its canonical form.
        let routes = [
            ("routable_ips", &node.routable_ips),
            ("approved_routes", &node.approved_routes),
        ];
        for (field, list) in routes {
            for (j, net) in list.iter().enumerate() {
                if net.trunc() != *net {
                    err(
                        K::InvalidPrefix,
                        format!(
                            "nodes[{i}].{field}[{j}]: prefix \"{net}\" has host bits set (did you mean \"{}\"?)",
                            net.trunc()
                        ),
                    );
                }
            }
        }
        if node.ipv4.is_none() && node.ipv6.is_none() {
            err(
                K::NoAddress,
                format!(
                    "nodes[{i}]: node \"{name}\" has no address (give it \"ipv4\", \"ipv6\" or both)"
                ),
            );
        }
    }
}

impl Inventory {
    /// Addresses used twice, with the position of the node reusing one.
    pub(super) fn check_addresses(&self) -> Vec<(usize, InventoryError)> {
        let mut errors = Vec::new();
        let mut addresses: crate::hash::Map<IpAddr, usize> =
            crate::hash::Map::with_capacity_and_hasher(2 * self.nodes.len(), Default::default());
        for (i, node) in self.nodes.iter().enumerate() {
            let v4 = node.ipv4.map(|a| ("ipv4", IpAddr::V4(a)));
            let v6 = node.ipv6.map(|a| ("ipv6", IpAddr::V6(a)));
            for (field, address) in v4.into_iter().chain(v6) {
                if let Some(first) = addresses.insert(address, i) {
                    addresses.insert(address, first);
                    let other = self.nodes.get(first).map_or("", |n| n.name.as_str());
                    errors.push((
                        i,
                        InventoryError::new(
                            InventoryErrorKind::DuplicateAddress,
                            format!(
                                "nodes[{i}].{field}: address {address} is already used by node \"{other}\" (nodes[{first}])"
                            ),
                        ),
                    ));
                }
            }
        }
        errors
    }

    /// Each node's rank in the registration order.
    /// True when every node is listed, in node order (each rank is the node's position).
    pub(super) fn check_order(
        &self,
        node_by_name: &mut names::NameIndex,
        errors: &mut Vec<InventoryError>,
    ) -> bool {
        use InventoryErrorKind as K;
        // Every node listed, in node order (as the engine builds them): each rank is the
        // position, without a lookup per name.
        let listed = match &self.registration_order {
            Registration::NodeOrder => {
                node_by_name.rank_by_position();
                return true;
            }
            Registration::Listed(listed) => listed,
        };
        if node_by_name.len() == self.nodes.len()
            && listed.len() == self.nodes.len()
            && listed
                .iter()
                .zip(&self.nodes)
                .all(|(listed, node)| *listed == node.name)
        {
            node_by_name.rank_by_position();
            return true;
        }
        let name_of = self.name_of();
        for (i, name) in listed.iter().enumerate() {
            let Some((_, rank)) = node_by_name.get_mut(name, name_of) else {
                errors.push(InventoryError::new(
                    K::UnknownNode,
                    format!("registration_order[{i}]: unknown node \"{name}\" (not among nodes)"),
                ));
                continue;
            };
            if *rank == usize::MAX {
                *rank = i;
            } else {
                let first = *rank;
                errors.push(InventoryError::new(
                    K::DuplicateRegistration,
                    format!(
                        "registration_order[{i}]: node \"{name}\" listed twice (also registration_order[{first}])"
                    ),
                ));
            }
        }
        false
    }
}
