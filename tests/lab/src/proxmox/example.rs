//! `ClusterSeed::example`: a small, realistic cluster for the default lab
//! seed and for tests. Addresses are from RFC 5737 / RFC 3849 only, MACs use
//! the Proxmox prefix `BC:24:11`.
//!
//! The `encrypted_password` values are Fernet tokens made with the key
//! `QunVEIr4bbBicnbnB1RSo4HBkYpGqhND_iDYcwcq9uE=`, i.e. the legacy
//! passphrase key of `lab-notes-passphrase`
//! (URL-safe base64 of SHA-256 of the passphrase); see [`EXAMPLE_PASSPHRASE`].

use super::seed::{
    AclSeed, AgentSeed, AgentState, ClusterSeed, GuestSeed, IfaceSeed, NetSeed, SeedStatus,
    TokenSeed, UserSeed,
};

/// Legacy passphrase whose Fernet key opens the example's encrypted notes.
pub const EXAMPLE_PASSPHRASE: &str = "lab-notes-passphrase";
/// The Fernet key derived from [`EXAMPLE_PASSPHRASE`].
pub const EXAMPLE_FERNET_KEY: &str = "QunVEIr4bbBicnbnB1RSo4HBkYpGqhND_iDYcwcq9uE=";
/// Fernet token of `Enc-Passw0rd!` (VM 101).
pub const EXAMPLE_TOKEN_DBA: &str = "gAAAAABndIWArEK7Xvokrh0e_fqNCs0sIaKu35zou7Lh45Rgk8Q80QNdCbqfvdfR0OFJ4E57DughvJrlDjL6B7on8-ngFQGobg==";
/// Fernet token of `Vnc-0nly#7` (VM 106).
pub const EXAMPLE_TOKEN_VIEWER: &str = "gAAAAABndIWAwcglmhZ6aLVrPJIN2-VZDHZRf5jfLjoOJqkhHemHP12_eD2WlUO1xJWmZYy3OpnozjcKmX_cU6GMyNKZPDrbGQ==";

/// The example's primary token (the daemon's service account).
pub const EXAMPLE_TOKEN_ID: &str = "sync@pve!pve-guac-sync";
pub const EXAMPLE_TOKEN_SECRET: &str = "3b1f5d2e-7c4a-4e8b-9a6d-1f2e3d4c5b6a";

fn net(mac: &str, addrs: &[&str]) -> NetSeed {
    NetSeed {
        mac: Some(mac.into()),
        addresses: addrs.iter().map(|a| a.to_string()).collect(),
        ..NetSeed::default()
    }
}

fn vm(vmid: u32, name: &str, node: &str, status: SeedStatus) -> GuestSeed {
    GuestSeed {
        status,
        ..GuestSeed::vm(vmid, name, node)
    }
}

impl ClusterSeed {
    /// Three nodes, nine VMs (one template, one paused, one locked, agents
    /// up/down/booting/absent), three containers, a mix of notes.
    pub fn example(name: &str) -> ClusterSeed {
        let mut seed = ClusterSeed::new(name)
            .version("9.1.6")
            .node("pve1")
            .node("pve2")
            .node("pve3")
            .role(
                "GuacSync",
                &[
                    "VM.Audit",
                    "VM.Config.Options",
                    "VM.PowerMgmt",
                    "VM.GuestAgent.Audit",
                    "VM.Monitor",
                    "Sys.Audit",
                    "Pool.Audit",
                ],
            )
            .pool("prod");
        seed.users = vec![
            UserSeed {
                userid: "sync@pve".into(),
                ..UserSeed::default()
            },
            UserSeed {
                userid: "auditor@pve".into(),
                ..UserSeed::default()
            },
        ];
        seed.tokens = vec![
            TokenSeed::new("sync@pve", "pve-guac-sync", EXAMPLE_TOKEN_SECRET),
            TokenSeed::new("auditor@pve", "ro", "9d2c4b6a-1e3f-4a5b-8c7d-0e1f2a3b4c5d")
                .privsep(false),
            TokenSeed::new("root@pam", "lab", "c0ffee00-1234-4abc-9def-0123456789ab")
                .privsep(false),
        ];
        let acl = |path: &str, role: &str, user: Option<&str>, token: Option<&str>| AclSeed {
            path: path.into(),
            role: role.into(),
            user: user.map(str::to_string),
            token: token.map(str::to_string),
            ..AclSeed::default()
        };
        seed.acls = vec![
            acl("/", "GuacSync", Some("sync@pve"), None),
            acl("/", "GuacSync", None, Some(EXAMPLE_TOKEN_ID)),
            acl(
                "/sdn/zones/localnetwork",
                "PVESDNUser",
                Some("sync@pve"),
                None,
            ),
            acl(
                "/sdn/zones/localnetwork",
                "PVESDNUser",
                None,
                Some(EXAMPLE_TOKEN_ID),
            ),
            acl("/", "PVEAuditor", Some("auditor@pve"), None),
        ];

        let mut web = vm(100, "web01", "pve1", SeedStatus::Running)
            .agent("1")
            .tags(&["prod", "web"])
            .pool("prod")
            .notes("Web frontend, owned by team A.\nuser:\"admin\" pass:\"S3cret\" protos:\"rdp,ssh\";");
        web.nets = vec![net(
            "BC:24:11:5A:3C:01",
            &["192.0.2.10/24", "2001:db8::10/64"],
        )];

        let mut db = vm(101, "db01", "pve1", SeedStatus::Running)
            .agent("enabled=1,fstrim_cloned_disks=1,type=virtio")
            .tags(&["prod"])
            .pool("prod")
            .notes(&format!(
                "Primary database.\n\nuser:\"dba\" encrypted_password:\"{EXAMPLE_TOKEN_DBA}\" protos:\"ssh\" ssh_port:\"2222\";"
            ));
        db.nets = vec![
            net("BC:24:11:5A:3C:11", &["192.0.2.11/24"]),
            net("BC:24:11:5A:3C:12", &[]),
        ];

        let mut win = vm(102, "win-app", "pve2", SeedStatus::Running)
            .agent("1")
            .agent_state(AgentState::Down)
            .notes("<p>Windows app server</p>\n<p>user:\"Administrator\" pass:\"W1n-Pass\" protos:\"rdp\" rdp_settings:\"ignore-cert=true\";</p>");
        win.nets = vec![net("BC:24:11:6B:4D:01", &["198.51.100.20/24"])];

        let mut legacy = vm(103, "legacy-vm", "pve2", SeedStatus::Running)
            .notes("Old appliance, no guest agent.\nuser:\"ops\" pass:'p;ss' protos:\"vnc\" vnc_port:\"5901\";");
        legacy.nets = vec![net("BC:24:11:6B:4D:02", &["198.51.100.21/24"])];

        let mut build = vm(104, "build01", "pve3", SeedStatus::Stopped)
            .agent("1")
            .notes("CI builder, usually off.\nuser:\"ci\" pass:\"Bu1ld-It\" protos:\"ssh\";");
        build.guest_agent = AgentSeed {
            boot_delay_secs: 20.0,
            ..AgentSeed::default()
        };
        build.nets = vec![net("BC:24:11:7C:5E:01", &["203.0.113.10/24"])];

        let mut tmpl = vm(105, "tmpl-debian", "pve1", SeedStatus::Stopped)
            .template()
            .agent("1")
            .notes("Debian 12 template. Do not start.");
        tmpl.nets = vec![net("BC:24:11:5A:3C:05", &[])];

        let mut docker = vm(106, "docker01", "pve3", SeedStatus::Running)
            .agent("1")
            .notes(&format!(
                "user:\"viewer\" encrypted_password:\"{EXAMPLE_TOKEN_VIEWER}\" protos:\"vnc\" vnc_settings:\"read-only=true\";"
            ));
        docker.nets = vec![net("BC:24:11:7C:5E:02", &["203.0.113.20/24"])];
        docker.extra_interfaces = vec![
            IfaceSeed {
                name: "docker0".into(),
                mac: Some("02:42:C0:A8:00:01".into()),
                addresses: vec!["198.51.100.1/24".into()],
            },
            IfaceSeed {
                name: "tun0".into(),
                mac: None,
                addresses: vec!["203.0.113.254/32".into()],
            },
        ];

        let mut paused = vm(107, "paused-vm", "pve2", SeedStatus::Paused)
            .agent("1")
            .notes("Owner: alice; maintenance window Sunday.");
        paused.nets = vec![net("BC:24:11:6B:4D:07", &["198.51.100.27/24"])];

        let mut backup = vm(108, "files01", "pve1", SeedStatus::Running)
            .agent("1")
            .lock("backup")
            .notes("user:\"files\" pass:\"F1les!\" protos:\"ssh\";");
        backup.nets = vec![net("BC:24:11:5A:3C:08", &["192.0.2.18/24"])];

        let mut dns = GuestSeed::ct(200, "ct-dns", "pve1")
            .running()
            .notes("DNS resolver\nuser:\"root\" pass:\"Ct-R00t\" protos:\"ssh\";");
        dns.nets = vec![NetSeed {
            gateway: Some("192.0.2.1".into()),
            ..net("BC:24:11:9F:3A:1C", &["192.0.2.50/24", "2001:db8::50/64"])
        }];
        dns.memory_mib = 512;
        dns.disk_gib = 8;

        let mut proxy = GuestSeed::ct(201, "ct-proxy", "pve2")
            .notes("user:\"admin\" pass:\"Pr0xy\" protos:\"ssh,telnet\";");
        proxy.nets = vec![NetSeed {
            config_ip: Some("198.51.100.60/24".into()),
            gateway: Some("198.51.100.1".into()),
            ..net("BC:24:11:9F:3A:2C", &["198.51.100.60/24"])
        }];

        let mut mon = GuestSeed::ct(202, "ct-mon", "pve3").running();
        mon.nets = vec![
            net("BC:24:11:9F:3A:3C", &["203.0.113.30/24"]),
            net("BC:24:11:9F:3A:3D", &[]),
        ];

        seed.guests = vec![
            web, db, win, legacy, build, tmpl, docker, paused, backup, dns, proxy, mon,
        ];
        seed
    }

    /// Take `node` offline in the seed (e.g. `example(..).with_node_offline("pve3")`).
    pub fn with_node_offline(mut self, node: &str) -> ClusterSeed {
        for n in self.nodes.iter_mut().filter(|n| n.name == node) {
            n.online = false;
        }
        self
    }
}
