//! The v2 datastore importer key by key: each type and where its place goes, the
//! protocol names, each credential form (and which ones are warned about), each key
//! ignored with a warning, and each refusal at its key.

use super::*;

fn import_text(text: &str) -> Result<ImportedDatastore, Problems> {
    import(Path::new("store.yml"), text)
}

fn store(text: &str) -> ImportedDatastore {
    import_text(text).unwrap_or_else(|e| panic!("{e}"))
}

/// A blob datastore file with `rest` after its required keys.
fn blob(rest: &str) -> String {
    format!("name: b\ntype: azure_blob\naccount_name: acct\ncontainer_name: c\n{rest}")
}

/// The problems of a refused file: (field, line, message).
fn refused(text: &str) -> Vec<(String, Option<usize>, String)> {
    match import_text(text) {
        Ok(d) => panic!("accepted: {:?}", d.datastore),
        Err(p) => {
            p.0.into_iter()
                .map(|p| (p.field, p.location.map(|l| l.line), p.message))
                .collect()
        }
    }
}

fn credentials(d: &ImportedDatastore) -> Credentials {
    d.datastore
        .credentials()
        .cloned()
        .expect("a cloud datastore")
}

#[test]
fn each_type_puts_its_place_in_its_field() {
    let d = store(&blob("endpoint: core.chinacloudapi.cn\n"));
    assert_eq!(d.name, "b");
    assert_eq!(
        d.datastore,
        Datastore::AzureBlob {
            account_name: "acct".into(),
            container_name: "c".into(),
            endpoint: Some("core.chinacloudapi.cn".into()),
            protocol: None,
            credentials: Credentials::default(),
        }
    );
    let d = store("name: g\ntype: azure_data_lake_gen2\naccount_name: a\nfilesystem: fs\n");
    assert!(
        matches!(&d.datastore, Datastore::AzureDataLakeGen2 { filesystem, .. } if filesystem == "fs")
    );
    let d = store("name: f\ntype: azure_file\naccount_name: a\nfile_share_name: share\n");
    assert!(
        matches!(&d.datastore, Datastore::AzureFile { file_share_name, .. } if file_share_name == "share")
    );
    assert!(d.warnings.is_empty());
}

#[test]
fn azure_ml_protocol_names_become_https_or_http() {
    for (given, want) in [
        ("wasbs", "https"),
        ("abfss", "https"),
        ("wasb", "http"),
        ("abfs", "http"),
        ("https", "https"),
        ("http", "http"),
    ] {
        match store(&blob(&format!("protocol: {given}\n"))).datastore {
            Datastore::AzureBlob { protocol, .. } => {
                assert_eq!(protocol.as_deref(), Some(want), "{given}")
            }
            other => panic!("{other:?}"),
        }
    }
    let r = refused(&blob("protocol: ftp\n"));
    assert_eq!((r[0].0.as_str(), r[0].1), ("protocol", Some(5)));
    assert!(r[0].2.contains("unknown protocol \"ftp\""));
}

#[test]
fn credentials_in_every_form() {
    let d = store(&blob("credentials: {account_key: {env: KEY}}\n"));
    assert_eq!(
        credentials(&d).account_key,
        Some(Secret::Env { env: "KEY".into() })
    );
    assert!(d.warnings.is_empty(), "a variable is not a literal");
    let d = store(&blob("credentials: {sas_token: {file: sas.txt}}\n"));
    assert_eq!(
        credentials(&d).sas_token,
        Some(Secret::File {
            file: "sas.txt".into()
        })
    );
    let d = store(&blob(
        "credentials:\n  tenant_id: t\n  client_id: 42\n  client_secret: s3cr3t\n",
    ));
    let c = credentials(&d);
    assert_eq!(
        (c.tenant_id.as_deref(), c.client_id.as_deref()),
        (Some("t"), Some("42"))
    );
    assert!(matches!(c.client_secret, Some(Secret::Literal(_))));
    // The literal is warned about at its line, without its value.
    assert_eq!(d.warnings.len(), 1);
    let w = &d.warnings[0];
    assert_eq!(
        (w.field.as_str(), w.location.map(|l| l.line)),
        ("credentials.client_secret", Some(8))
    );
    assert!(w.message.contains("prefer {env: NAME}") && !w.to_string().contains("s3cr3t"));
}

#[test]
fn authority_and_resource_urls_are_ignored_with_a_warning() {
    for key in ["authority_url", "resource_url"] {
        let d = store(&blob(&format!(
            "credentials: {{{key}: https://login.example}}\n"
        )));
        assert_eq!(d.warnings.len(), 1, "{key}");
        assert_eq!(d.warnings[0].field, format!("credentials.{key}"));
        assert!(d.warnings[0]
            .message
            .starts_with("ignored: the authority follows the endpoint"));
    }
}

#[test]
fn credential_refusals() {
    let r = refused(&blob("credentials: {account_key: [a]}\n"));
    assert_eq!(r[0].0, "credentials.account_key");
    assert!(r[0].2.contains("{env: NAME} or {file: PATH}"), "{r:?}");
    let r = refused(&blob("credentials: {password: p}\n"));
    assert_eq!(r[0].0, "credentials.password");
    assert!(r[0].2.contains("unknown credential"), "{r:?}");
    let r = refused(&blob("credentials: [a]\n"));
    assert_eq!(r[0].0, "credentials");
}

#[test]
fn unknown_keys_are_ignored_with_a_warning_and_labels_silently() {
    let d = store(&blob(
        "$schema: https://azuremlschemas.azureedge.net/latest/azureBlob.schema.json\ndescription: d\ntags: {a: b}\nsubscription_id: s\n",
    ));
    let fields: Vec<&str> = d.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(fields, ["subscription_id"]);
    assert!(d.warnings[0]
        .message
        .contains("not a datastore key stagehand knows"));
}

#[test]
fn required_keys_are_each_named() {
    let r = refused("type: azure_blob\n");
    let fields: Vec<&str> = r.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(fields, ["name", "account_name", "container_name"]);
    let r = refused("name: g\ntype: azure_data_lake_gen2\naccount_name: a\n");
    assert_eq!(r[0].0, "filesystem");
    let r = refused("name: f\ntype: azure_file\naccount_name: a\n");
    assert_eq!(r[0].0, "file_share_name");
}

#[test]
fn types_stagehand_cannot_reach_are_refused_at_type() {
    for ty in ["azure_data_lake_gen1", "onelake", "s3", "gcs", "hdfs"] {
        let r = refused(&format!("name: x\ntype: {ty}\n"));
        assert_eq!((r[0].0.as_str(), r[0].1), ("type", Some(2)), "{ty}");
        assert!(r[0].2.contains("are not supported"), "{ty}: {r:?}");
    }
    let r = refused("name: x\ntype: ftp\n");
    assert!(r[0].2.contains("unknown datastore type \"ftp\""), "{r:?}");
    let r = refused("name: x\n");
    assert_eq!(r[0].0, "type");
    assert!(r[0].2.starts_with("missing"));
}

#[test]
fn files_that_are_not_datastores() {
    let r = refused("- a\n");
    assert!(
        r[0].2.contains("a datastore file is a YAML mapping"),
        "{r:?}"
    );
    let r = refused("name: [\n");
    assert!(r[0].2.starts_with("not valid YAML"), "{r:?}");
    let err = load(Path::new("/nonexistent/store.yml")).unwrap_err();
    assert!(
        err.0[0]
            .message
            .starts_with("cannot read the datastore file"),
        "{err}"
    );
}
