use super::*;

/// A file as Editor 4.1.x (MatIEC) writes it: flat indices, initial values, no version.
pub(crate) const GEN_A: &str = r#"[
  {
    "name": "opcua_server",
    "protocol": "OPC-UA",
    "config": {
      "server": {
        "name": "OpenPLC OPC UA Server",
        "application_uri": "urn:openplc:opcua:server",
        "product_uri": "urn:openplc:runtime",
        "endpoint_url": "opc.tcp://0.0.0.0:4840/openplc/opcua",
        "security_profiles": [
          { "name": "insecure", "enabled": true, "security_policy": "None", "security_mode": "None", "auth_methods": ["Anonymous", "Username"] },
          { "name": "secure", "enabled": true, "security_policy": "Basic256Sha256", "security_mode": "SignAndEncrypt", "auth_methods": ["Username", "Certificate"] }
        ]
      },
      "security": {
        "server_certificate_strategy": "auto_self_signed",
        "server_certificate_custom": null,
        "server_private_key_custom": null,
        "trusted_client_certificates": [ { "id": "scada", "pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" } ]
      },
      "users": [
        { "type": "password", "username": "eng", "password_hash": "pbkdf2:sha256:600000$c2FsdHNhbHRzYWx0c2FsdA==$3q2+796tvu/erb7v3q2+796tvu/erb7v3q2+796tvu8=", "certificate_id": null, "role": "engineer" },
        { "type": "certificate", "username": null, "password_hash": null, "certificate_id": "scada", "role": "operator" }
      ],
      "cycle_time_ms": 100,
      "address_space": {
        "namespace_uri": "urn:openplc:opcua:namespace",
        "variables": [
          { "node_id": "PLC.Counter", "browse_name": "Counter", "display_name": "Counter", "datatype": "UINT", "initial_value": 0, "description": "", "index": 3,
            "permissions": { "viewer": "r", "operator": "rw", "engineer": "rw" } }
        ],
        "structures": [
          { "node_id": "PLC.Timer", "browse_name": "Timer", "display_name": "Timer", "description": "a TON",
            "fields": [
              { "name": "Q", "datatype": "BOOL", "initial_value": false, "index": 5, "permissions": { "viewer": "r", "operator": "r", "engineer": "rw" } },
              { "name": "Inner", "datatype": "MY_T", "initial_value": 0, "index": null, "permissions": { "viewer": "r", "operator": "r", "engineer": "r" },
                "fields": [ { "name": "ET", "datatype": "TIME", "initial_value": 0, "index": 6, "permissions": { "viewer": "r", "operator": "r", "engineer": "r" } } ] }
            ] }
        ],
        "arrays": [
          { "node_id": "PLC.Levels", "browse_name": "Levels", "display_name": "Levels", "datatype": "INT", "length": 4, "initial_value": 0, "index": 10,
            "permissions": { "viewer": "r", "operator": "r", "engineer": "rw" } }
        ]
      }
    }
  }
]"#;

/// The newest Editor (STruC++): arr/elem, sizes, format_version 2, anonymous_role.
const GEN_B: &str = r#"[{"name":"opcua_server","protocol":"OPC-UA","config":{
  "format_version": 2,
  "server":{"name":"S","application_uri":"urn:a","product_uri":"urn:p","endpoint_url":"opc.tcp://[::1]:4841/x/",
    "security_profiles":[
      {"name":"anon","enabled":true,"security_policy":"None","security_mode":"None","auth_methods":["Anonymous"],"anonymous_role":"engineer"},
      {"name":"old","enabled":true,"security_policy":"Basic128Rsa15","security_mode":"Sign","auth_methods":["Username"]},
      {"name":"off","enabled":false,"security_policy":"Bogus","security_mode":"None","auth_methods":[]},
      {"name":"pss","enabled":true,"security_policy":"Aes256_Sha256_RsaPss","security_mode":"Sign","auth_methods":["Username"]}]},
  "security":{"server_certificate_strategy":"auto_self_signed","trusted_client_certificates":[]},
  "users":[],
  "cycle_time_ms": 5,
  "address_space":{"namespace_uri":"urn:ns",
    "variables":[{"node_id":"V","browse_name":"V","display_name":"","datatype":"WSTRING","description":"d","arr":1,"elem":2,"size":253,
      "permissions":{"viewer":"r","operator":"r","engineer":"rw"}}],
    "structures":[],
    "arrays":[{"node_id":"A","browse_name":"A","display_name":"A","datatype":"LREAL","length":3,"arr":0,"elem":7,"size":8,
      "permissions":{"viewer":"r","operator":"rw","engineer":"rw"}}]}}}]"#;

fn load(text: &str) -> Result<ServerConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SERVER_FILE);
    std::fs::write(&path, text).unwrap();
    ServerConfig::load(&path)
}

#[test]
fn a_matiec_era_file_is_read_as_written() {
    let c = load(GEN_A).unwrap();
    assert_eq!(
        c.endpoint,
        Endpoint {
            url: "opc.tcp://0.0.0.0:4840/openplc/opcua".into(),
            host: "0.0.0.0".into(),
            port: 4840,
            path: "/openplc/opcua".into()
        }
    );
    assert_eq!(c.profiles.len(), 2);
    assert!(c.profiles[0].anonymous && c.profiles[0].username && !c.profiles[0].certificate);
    assert_eq!((c.profiles[1].policy, c.profiles[1].mode), (Policy::Basic256Sha256, Mode::SignAndEncrypt));
    assert_eq!(c.users.len(), 2);
    assert_eq!(c.users[0].role, Role::Engineer);
    assert_eq!(c.cycle_time_ms, 100);
    assert_eq!(c.nodes.len(), 3);
    let NodeDef::Variable { at, ty, permissions, .. } = &c.nodes[0] else { panic!() };
    assert_eq!((*at, *ty), (VarRef::Flat(3), IecType::Uint));
    assert!(permissions.operator.write && !permissions.viewer.write);
    let NodeDef::Object { children, .. } = &c.nodes[1] else { panic!() };
    let NodeDef::Object { node_id, children: inner, .. } = &children[1] else { panic!() };
    assert_eq!(node_id, "PLC.Timer.Inner");
    assert!(
        matches!(&inner[0], NodeDef::Variable { node_id, at: VarRef::Flat(6), ty: IecType::Time, .. } if node_id == "PLC.Timer.Inner.ET")
    );
    assert!(matches!(&c.nodes[2], NodeDef::Array { length: 4, at: VarRef::Flat(10), ty: IecType::Int, .. }));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn a_strucpp_era_file_is_read_with_its_adjustments_said() {
    let c = load(GEN_B).unwrap();
    assert_eq!((c.endpoint.host.as_str(), c.endpoint.port, c.endpoint.path.as_str()), ("::1", 4841, "/x"));
    assert_eq!(c.profiles.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["anon", "pss"]);
    assert_eq!(c.profiles[1].policy, Policy::Aes256Sha256RsaPss);
    assert_eq!(c.cycle_time_ms, 10);
    let w = c.warnings.join("\n");
    assert!(w.contains("never more than a viewer"), "{w}");
    assert!(w.contains("deprecated"), "{w}");
    assert!(w.contains("cycle_time_ms 5"), "{w}");
    assert!(
        matches!(&c.nodes[0], NodeDef::Variable { at: VarRef::Leaf { arr: 1, elem: 2 }, size: Some(253), display_name, .. } if display_name == "V")
    );
    assert!(matches!(&c.nodes[1], NodeDef::Array { at: VarRef::Leaf { arr: 0, elem: 7 }, length: 3, .. }));
}

#[test]
fn mistakes_are_errors_that_say_where() {
    let cases = [
        (GEN_A.replace("\"UINT\"", "\"TON\""), "datatype \"TON\""),
        (GEN_A.replace("\"index\": 10", "\"index\": 5"), "mapped by two nodes"),
        (GEN_A.replace("\"PLC.Levels\"", "\"PLC.Counter\""), "used twice"),
        (
            GEN_A.replace("\"rw\", \"engineer\": \"rw\" } }\n        ]", "\"x\", \"engineer\": \"rw\" } }\n        ]"),
            "not r, w or rw",
        ),
        (GEN_A.replace("opc.tcp://0.0.0.0:4840", "http://0.0.0.0:4840"), "endpoint_url"),
        (
            GEN_A.replace(
                "\"Basic256Sha256\", \"security_mode\": \"SignAndEncrypt\"",
                "\"Basic256Sha256\", \"security_mode\": \"None\"",
            ),
            "goes with mode None",
        ),
        (GEN_A.replace("\"role\": \"engineer\"", "\"role\": \"admin\""), "unknown role"),
        (GEN_A.replace("\"certificate_id\": \"scada\"", "\"certificate_id\": \"other\""), "not among trusted"),
        (GEN_A.replace("pbkdf2:sha256:600000$", "bcrypt$"), "password_hash"),
        (GEN_A.replace("\"OPC-UA\"", "\"MODBUS\""), "protocol"),
        (GEN_A.replace("\"index\": 3,", ""), "no index"),
        (
            GEN_A.replace("\"cycle_time_ms\": 100", "\"cycle_time_ms\": 100, \"limits\": {\"max_sesions\": 3}"),
            "max_sesions",
        ),
        ("{}".to_string(), "invalid type"),
        ("[]".to_string(), "lists no server"),
    ];
    for (text, expected) in cases {
        let err = load(&text).expect_err(expected).to_string();
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        assert!(err.contains("opcua.json"), "{err}");
    }
}

#[test]
fn endpoint_urls() {
    let e = Endpoint::parse("opc.tcp://plc.local/").unwrap();
    assert_eq!((e.host.as_str(), e.port, e.path.as_str()), ("plc.local", 4840, "/"));
    assert!(Endpoint::parse("opc.tcp://:4840/x").is_none());
    assert!(Endpoint::parse("opc.tcp://h:99999/x").is_none());
}
