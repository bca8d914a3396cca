//! Argument substitution: the forms a job uses to name its data in its command line.
//!
//! `$AZUREML_DATAREFERENCE_N`, `${AZUREML_DATAREFERENCE_N}`, `${{inputs.N}}` and
//! `${{outputs.N}}` are replaced anywhere in an argument, also inside a longer one
//! (`--in=$AZUREML_DATAREFERENCE_x/sub`). Nothing else is touched: no shell expansion.

/// The variable prefix of the data contract.
pub const DATAREF_PREFIX: &str = "AZUREML_DATAREFERENCE_";

/// A reference found in an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `${{inputs.N}}`.
    Input(String),
    /// `${{outputs.N}}`.
    Output(String),
    /// `$AZUREML_DATAREFERENCE_N` or `${AZUREML_DATAREFERENCE_N}`: an input or an output.
    DataRef(String),
}

impl Reference {
    /// The name referred to.
    pub fn name(&self) -> &str {
        match self {
            Reference::Input(n) | Reference::Output(n) | Reference::DataRef(n) => n,
        }
    }
}

enum Piece<'a> {
    Text(&'a str),
    Ref(Reference),
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits an argument into literal text and references.
fn pieces(arg: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while let Some(off) = arg[i..].find('$') {
        let at = i + off;
        let rest = &arg[at..];
        let found = if let Some(inner) = rest.strip_prefix("${{") {
            inner.find("}}").and_then(|end| {
                let expr = inner[..end].trim();
                let r = if let Some(n) = expr.strip_prefix("inputs.") {
                    Reference::Input(n.to_string())
                } else if let Some(n) = expr.strip_prefix("outputs.") {
                    Reference::Output(n.to_string())
                } else {
                    return None;
                };
                Some((r, 3 + end + 2))
            })
        } else if let Some(inner) = rest.strip_prefix("${") {
            inner.find('}').and_then(|end| {
                inner[..end]
                    .strip_prefix(DATAREF_PREFIX)
                    .map(|n| (Reference::DataRef(n.to_string()), 2 + end + 1))
            })
        } else if let Some(inner) = rest.strip_prefix('$') {
            inner.strip_prefix(DATAREF_PREFIX).map(|after| {
                let n: String = after.chars().take_while(|c| is_name_char(*c)).collect();
                let len = 1 + DATAREF_PREFIX.len() + n.len();
                (Reference::DataRef(n), len)
            })
        } else {
            None
        };
        match found {
            Some((r, len)) => {
                if at > text_start {
                    out.push(Piece::Text(&arg[text_start..at]));
                }
                out.push(Piece::Ref(r));
                i = at + len;
                text_start = i;
            }
            None => i = at + 1,
        }
    }
    if text_start < arg.len() {
        out.push(Piece::Text(&arg[text_start..]));
    }
    out
}

/// Every reference in `arg`, in order.
pub fn references(arg: &str) -> Vec<Reference> {
    pieces(arg)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Ref(r) => Some(r),
            Piece::Text(_) => None,
        })
        .collect()
}

/// Replaces every reference in `arg` with `resolve(reference)`. A reference that
/// `resolve` does not know is returned as the error (validation catches these first).
pub fn substitute(
    arg: &str,
    mut resolve: impl FnMut(&Reference) -> Option<String>,
) -> Result<String, Reference> {
    let mut out = String::with_capacity(arg.len());
    for p in pieces(arg) {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Ref(r) => match resolve(&r) {
                Some(v) => out.push_str(&v),
                None => return Err(r),
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(arg: &str) -> Result<String, Reference> {
        substitute(arg, |r| match r {
            Reference::Input(n) | Reference::DataRef(n) if n == "x" => Some("/d/x".into()),
            Reference::Output(n) | Reference::DataRef(n) if n == "out" => Some("/o".into()),
            _ => None,
        })
    }

    #[test]
    fn every_form() {
        assert_eq!(sub("$AZUREML_DATAREFERENCE_x").unwrap(), "/d/x");
        assert_eq!(sub("${AZUREML_DATAREFERENCE_x}").unwrap(), "/d/x");
        assert_eq!(sub("${{inputs.x}}").unwrap(), "/d/x");
        assert_eq!(sub("${{ inputs.x }}").unwrap(), "/d/x");
        assert_eq!(sub("${{outputs.out}}").unwrap(), "/o");
        assert_eq!(
            sub("--in=$AZUREML_DATAREFERENCE_x/sub").unwrap(),
            "--in=/d/x/sub"
        );
        assert_eq!(
            sub("a${AZUREML_DATAREFERENCE_x}b${{outputs.out}}c").unwrap(),
            "a/d/xb/oc"
        );
        assert_eq!(sub("costs $5 and $HOME").unwrap(), "costs $5 and $HOME");
        assert_eq!(sub("").unwrap(), "");
    }

    #[test]
    fn unknown_names_are_errors() {
        assert_eq!(
            sub("$AZUREML_DATAREFERENCE_y"),
            Err(Reference::DataRef("y".into()))
        );
        assert_eq!(sub("${{inputs.out}}"), Err(Reference::Input("out".into())));
        assert_eq!(sub("${{outputs.x}}"), Err(Reference::Output("x".into())));
    }

    #[test]
    fn references_in_order() {
        assert!(references("${{inputs.x").is_empty(), "unterminated: text");
        assert!(
            references("${{ env.HOME }}").is_empty(),
            "not inputs or outputs: text"
        );
        assert!(references("${HOME} $HOME ${AZUREML_OTHER_x}").is_empty());
        assert_eq!(
            references("$AZUREML_DATAREFERENCE_a-b"),
            vec![Reference::DataRef("a".into())],
            "a name ends where its characters end"
        );
        assert_eq!(
            references("$AZUREML_DATAREFERENCE_a:${{outputs.b}}"),
            vec![
                Reference::DataRef("a".into()),
                Reference::Output("b".into())
            ]
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn text_without_references_is_untouched(arg in "[^$]*|.*\\$[0-9A-Za-z ]*") {
            if references(&arg).is_empty() {
                prop_assert_eq!(substitute(&arg, |_| None), Ok(arg.clone()));
            }
        }

        #[test]
        fn every_reference_is_replaced(pre in "[a-z=/-]{0,8}", name in "[a-z][a-z0-9_]{0,8}", post in "[/.a-z]{0,8}") {
            for form in [format!("${{{{inputs.{name}}}}}"), format!("${{AZUREML_DATAREFERENCE_{name}}}")] {
                let arg = format!("{pre}{form}{post}");
                let got = substitute(&arg, |r| (r.name() == name).then(|| "/X".to_string()));
                prop_assert_eq!(got, Ok(format!("{pre}/X{post}")));
            }
        }
    }
}
