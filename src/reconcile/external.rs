//! Desire for the hosts of the `external:` section (pure). Each protocol of a
//! host is one connection with the identity `external/<name>/<protocol>`; it
//! then goes through the same claim, plan, budget and apply as a guest's.
//! A host removed from the file is absent like a vanished guest, so the
//! prune settings (grace, `enabled`) decide when its connections go.

use super::model::{
    Desired, DesiredConnection, EXTERNAL_CLUSTER, GuestKey, HoldReason, Identity, ParamValue,
    Params, Problem,
};
use crate::config::ExternalHost;
use crate::notes::template::{self, MAX_NAME_CHARS, TemplateValues};

/// Adds the external hosts to a guest-only wish. Guests were settled first:
/// a name a guest already uses in the same group stays the guest's.
pub fn add_external(
    want: &mut Desired,
    hosts: &[ExternalHost],
    name_template: &str,
    hostname: &str,
) {
    // The configuration is always known in full.
    want.clusters.insert(EXTERNAL_CLUSTER.to_owned());
    want.complete_clusters.insert(EXTERNAL_CLUSTER.to_owned());
    for host in hosts {
        let key = GuestKey::external(&host.name);
        want.present.insert(key.clone());
        for &protocol in &host.protocols {
            let identity = Identity::external(&host.name, protocol.as_str());
            match connection(host, protocol, name_template, hostname, &identity) {
                Ok(c) => place(want, c),
                Err(message) => hold(
                    want,
                    &key,
                    HoldReason::BlockError,
                    format!("{identity}: {message}"),
                ),
            }
        }
    }
}

fn connection(
    host: &ExternalHost,
    protocol: crate::notes::Protocol,
    name_template: &str,
    hostname: &str,
    identity: &Identity,
) -> Result<DesiredConnection, String> {
    let port = host.port.unwrap_or_else(|| protocol.default_port());
    let port_text = port.to_string();
    let values = TemplateValues {
        vmname: &host.name,
        user: &host.username,
        proto: protocol.as_str(),
        vmid: "",
        node: "",
        ip: &host.host,
        port: &port_text,
        cluster: EXTERNAL_CLUSTER,
        hostname,
    };
    let name = template::render(name_template, &values).trim().to_owned();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(format!(
            "the connection name is {chars} characters long (1 to {MAX_NAME_CHARS})"
        ));
    }
    let mut params = Params::new();
    // Settings first, so the fields the daemon owns always win.
    for (k, v) in host.settings.get(&protocol).into_iter().flatten() {
        params.insert(k.clone(), ParamValue::from_server(k, v.clone()));
    }
    params.insert("hostname", ParamValue::plain(host.host.clone()));
    params.insert("port", ParamValue::plain(port_text.clone()));
    params.insert("username", ParamValue::plain(host.username.clone()));
    params.insert("password", ParamValue::secret(host.password.expose()));
    Ok(DesiredConnection {
        identity: identity.clone(),
        name,
        group: host.group.clone(),
        protocol: protocol.as_str().to_owned(),
        params,
        guest_name: host.name.clone(),
        node: String::new(),
    })
}

/// No connection is ever shared: a name taken in the group is reported and
/// the host's connections are kept as they are.
fn place(want: &mut Desired, c: DesiredConnection) {
    let taken = want
        .connections
        .values()
        .find(|o| o.group == c.group && o.name == c.name)
        .map(|o| o.identity.to_string());
    match taken {
        Some(winner) => {
            let message = format!(
                "{}: connection name \"{}\" is already used by {winner} in the same group",
                c.identity, c.name
            );
            hold(want, &c.identity.guest, HoldReason::NameConflict, message);
        }
        None => {
            want.connections.insert(c.identity.clone(), c);
        }
    }
}

fn hold(want: &mut Desired, key: &GuestKey, reason: HoldReason, message: String) {
    want.held.entry(key.clone()).or_insert(reason);
    want.problems.push(Problem {
        guest: Some(key.clone()),
        message,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notes::Protocol;
    use crate::secret::Secret;

    fn host(name: &str, protocols: &[Protocol]) -> ExternalHost {
        ExternalHost {
            name: name.into(),
            host: "10.20.0.2".into(),
            protocols: protocols.to_vec(),
            port: None,
            username: "admin".into(),
            password: Secret::new("pw"),
            group: vec!["Network".into()],
            settings: Default::default(),
        }
    }

    #[test]
    fn one_connection_per_protocol_with_an_external_identity() {
        let mut want = Desired::default();
        let h = host("core-switch", &[Protocol::Ssh, Protocol::Telnet]);
        add_external(&mut want, &[h], "{user}@{vmname}-{proto}", "daemon");
        let ssh = &want.connections[&Identity::external("core-switch", "ssh")];
        assert_eq!(ssh.name, "admin@core-switch-ssh");
        assert_eq!(ssh.group, vec!["Network".to_owned()]);
        assert_eq!(ssh.params.get("hostname").unwrap().expose(), "10.20.0.2");
        assert_eq!(ssh.params.get("port").unwrap().expose(), "22");
        assert!(ssh.params.get("password").unwrap().is_secret());
        assert_eq!(want.connections.len(), 2);
        assert!(want.complete_clusters.contains(EXTERNAL_CLUSTER));
        assert!(want.present.contains(&GuestKey::external("core-switch")));
    }

    #[test]
    fn a_name_taken_in_the_group_holds_the_host() {
        let mut want = Desired::default();
        let hosts = [host("a", &[Protocol::Ssh]), host("b", &[Protocol::Ssh])];
        add_external(&mut want, &hosts, "{user}-{proto}", "daemon");
        assert_eq!(want.connections.len(), 1);
        assert_eq!(
            want.held.get(&GuestKey::external("b")),
            Some(&HoldReason::NameConflict)
        );
        assert!(want.problems[0].message.contains("external/a/ssh"));
    }
}
