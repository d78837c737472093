//! Guest interface answers: the QEMU agent's `network-get-interfaces` (an array,
//! or an HTTP-200 QGA error object) and LXC `interfaces` (array or `null`).

use serde_json::Value;

use super::error::ProxmoxError;
use super::types::GuestInterface;

/// Parses the `data` of `…/agent/network-get-interfaces`:
/// `{"result":[…]}` or `{"result":{"error":{"class":…,"desc":…}}}`.
pub fn parse_agent_interfaces(
    data: &Value,
    endpoint: &'static str,
) -> Result<Vec<GuestInterface>, ProxmoxError> {
    let decode = |reason: &str| ProxmoxError::Decode {
        endpoint,
        reason: reason.to_string(),
    };
    let result = data
        .get("result")
        .ok_or_else(|| decode("no `result` in the agent answer"))?;
    match result {
        Value::Array(list) => Ok(list.iter().filter_map(GuestInterface::from_value).collect()),
        Value::Object(obj) => match obj.get("error") {
            Some(err) => Err(ProxmoxError::AgentCommand {
                class: err.get("class").and_then(Value::as_str).map(str::to_string),
                desc: err
                    .get("desc")
                    .and_then(Value::as_str)
                    .unwrap_or("the agent reported an error")
                    .to_string(),
            }),
            None => Err(decode("agent `result` is an object without `error`")),
        },
        _ => Err(decode("agent `result` is neither an array nor an object")),
    }
}

/// Parses the `data` of `…/lxc/V/interfaces`: `null` for a stopped (or
/// missing) container, else an array.
pub fn parse_ct_interfaces(
    data: &Value,
    endpoint: &'static str,
) -> Result<Option<Vec<GuestInterface>>, ProxmoxError> {
    match data {
        Value::Null => Ok(None),
        Value::Array(list) => Ok(Some(
            list.iter().filter_map(GuestInterface::from_value).collect(),
        )),
        _ => Err(ProxmoxError::Decode {
            endpoint,
            reason: "container interfaces are neither an array nor null".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agent_array_with_loopback_and_addressless_interfaces() {
        let data = json!({"result":[
            {"name":"lo","hardware-address":"00:00:00:00:00:00","ip-addresses":[
                {"ip-address":"127.0.0.1","ip-address-type":"ipv4","prefix":8}]},
            {"name":"eth0","hardware-address":"bc:24:11:5a:3c:01","ip-addresses":[
                {"ip-address":"192.0.2.10","ip-address-type":"ipv4","prefix":24},
                {"ip-address":"2001:db8::10","ip-address-type":"ipv6","prefix":64}],
             "statistics":{"rx-bytes":1}},
            {"name":"eth1","hardware-address":"bc:24:11:5a:3c:02"}
        ]});
        let list = parse_agent_interfaces(&data, "t").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].ipv4().next().unwrap().ip.to_string(), "192.0.2.10");
        assert!(list[2].addresses.is_empty());
    }

    #[test]
    fn agent_error_object_is_typed() {
        for desc in [
            "Command guest-network-get-interfaces has been disabled",
            "The command guest-network-get-interfaces has been disabled for this instance",
        ] {
            let data = json!({"result":{"error":{"class":"CommandNotFound","desc":desc}}});
            match parse_agent_interfaces(&data, "t").unwrap_err() {
                ProxmoxError::AgentCommand { class, desc: d } => {
                    assert_eq!(class.as_deref(), Some("CommandNotFound"));
                    assert_eq!(d, desc);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            parse_agent_interfaces(&json!({"result":{}}), "t")
                .unwrap_err()
                .label(),
            "decode"
        );
        assert_eq!(
            parse_agent_interfaces(&json!({}), "t").unwrap_err().label(),
            "decode"
        );
    }

    #[test]
    fn ct_null_and_array() {
        assert_eq!(parse_ct_interfaces(&Value::Null, "t").unwrap(), None);
        let data = json!([
            {"name":"lo","hwaddr":"00:00:00:00:00:00","inet":"127.0.0.1/8"},
            {"name":"eth0","hwaddr":"bc:24:11:9f:3a:1c","hardware-address":"bc:24:11:9f:3a:1c",
             "inet":"192.0.2.50/24","ip-addresses":[
                {"ip-address-type":"inet","ip-address":"192.0.2.50","prefix":24},
                {"ip-address-type":"inet6","ip-address":"fe80::1","prefix":64}]},
            {"name":"wg0","hwaddr":null,"ip-addresses":[]}
        ]);
        let list = parse_ct_interfaces(&data, "t").unwrap().unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].addresses.len(), 2);
        assert_eq!(list[2].mac, None);
        assert!(parse_ct_interfaces(&json!("x"), "t").is_err());
    }
}
