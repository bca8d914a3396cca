//! Hugging Face Hub URLs as inputs write them: `hf://org/name@rev/sub/path` (a model),
//! `hf://datasets/org/name@rev/sub/path` (a dataset; `spaces/` likewise), with `main`
//! when no `@rev` is given. The revision is a branch, a tag or a commit id; the agent
//! resolves it to a commit before it reads a byte.
//!
//! Pure text: nothing here opens a connection.

/// An `hf://` URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubUrl {
    /// `model`, `dataset` or `space`.
    pub repo_type: &'static str,
    /// `org/name` (or a bare `name`, for the Hub's oldest repositories).
    pub repo: String,
    /// The branch, tag or commit id; `main` when the URL gives none.
    pub revision: String,
    /// The file or folder in the repository, no leading `/`; empty for all of it.
    pub path: String,
}

impl HubUrl {
    /// How a plan names the repository: `hf://datasets/org/name@rev`.
    pub fn name(&self) -> String {
        let kind = match self.repo_type {
            "model" => "",
            "dataset" => "datasets/",
            _ => "spaces/",
        };
        format!("hf://{kind}{}@{}", self.repo, self.revision)
    }
}

/// Whether `text` is an `hf://` URL.
pub fn is_hub_url(text: &str) -> bool {
    text.get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("hf://"))
}

/// Splits an `hf://` URL; the error says what is wrong with it (a leaf parser).
pub fn parse(url: &str) -> Result<HubUrl, String> {
    if !is_hub_url(url) {
        return Err(format!("{url:?} is not an hf:// URL"));
    }
    let rest = url[5..].trim_start_matches('/');
    let (repo_type, rest) = match rest.split_once('/') {
        Some(("datasets", r)) => ("dataset", r),
        Some(("spaces", r)) => ("space", r),
        Some(("models", r)) => ("model", r),
        _ => ("model", rest),
    };
    // `org/name@rev/path`: the repository is its first two parts, unless the first
    // already carries the revision (`name@rev/path`, an un-namespaced repository).
    let mut parts = rest.splitn(3, '/');
    let first = parts.next().unwrap_or_default();
    let (repo_parts, tail) = if first.contains('@') {
        (first.to_string(), rest[first.len()..].to_string())
    } else {
        let second = parts.next().unwrap_or_default();
        let tail = parts.next().map(|t| format!("/{t}")).unwrap_or_default();
        (format!("{first}/{second}"), tail)
    };
    let (repo, revision) = match repo_parts.split_once('@') {
        // A revision may hold `/` (`refs/pr/1`) only percent-encoded, as the Hub's own
        // URLs write it.
        Some((r, rev)) => (r.to_string(), rev.replace("%2F", "/").replace("%2f", "/")),
        None => (repo_parts.clone(), "main".to_string()),
    };
    let bad = |what: &str| {
        Err(format!("{url:?}: {what}; write hf://org/name@revision/path (a model) or hf://datasets/org/name@revision/path"))
    };
    if repo.is_empty() || repo.starts_with('/') || repo.ends_with('/') {
        return bad("it names no repository");
    }
    if revision.is_empty() {
        return bad("`@` is followed by no revision");
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_./".contains(c);
    if !repo.chars().all(ok) || repo.contains("..") {
        return bad("the repository name has characters the Hub does not allow");
    }
    Ok(HubUrl {
        repo_type,
        repo,
        revision,
        path: tail.trim_start_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(u: &str) -> (&'static str, String, String, String) {
        let h = parse(u).unwrap();
        (h.repo_type, h.repo, h.revision, h.path)
    }

    #[test]
    fn models_datasets_revisions_and_paths() {
        assert_eq!(
            split("hf://org/name"),
            ("model", "org/name".into(), "main".into(), "".into())
        );
        assert_eq!(
            split("hf://org/name@v1.0/onnx/model.onnx"),
            (
                "model",
                "org/name".into(),
                "v1.0".into(),
                "onnx/model.onnx".into()
            )
        );
        assert_eq!(
            split("hf://datasets/org/data@abc123/train/"),
            (
                "dataset",
                "org/data".into(),
                "abc123".into(),
                "train/".into()
            )
        );
        assert_eq!(
            split("hf://datasets/org/data/train/x.parquet"),
            (
                "dataset",
                "org/data".into(),
                "main".into(),
                "train/x.parquet".into()
            )
        );
        assert_eq!(
            split("hf://gpt2@main/config.json"),
            ("model", "gpt2".into(), "main".into(), "config.json".into())
        );
        assert_eq!(
            split("hf://org/name@refs%2Fpr%2F1"),
            ("model", "org/name".into(), "refs/pr/1".into(), "".into())
        );
        assert_eq!(
            parse("hf://datasets/org/data@v2").unwrap().name(),
            "hf://datasets/org/data@v2"
        );
        for bad in [
            "hf://",
            "hf://org/name@",
            "hf://datasets/",
            "hf://o$/n",
            "s3://x/y",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
