//! The key of a cache entry: what identifies an object's bytes. Two objects share a key
//! only when they are the same object of the same store at the same version: the
//! store's identity (kind, endpoint, container or share), the object's name, its version
//! token (the ETag) and its size. A changed blob has a new ETag, so a new key: the old
//! entry is never served for it, and ages out of the cache.

use crate::store::ObjectMeta;

/// Hex digits of the key (160 bits of SHA-256: no two objects on one node collide).
const KEY_HEX: usize = 40;

/// The key of `obj` in the store `identity` ([`crate::store::Store::cache_identity`]), or
/// `None` when the object has no version to pin its bytes to (nothing could tell a
/// changed object from the cached one, so it is never cached).
pub fn key(identity: &str, obj: &ObjectMeta) -> Option<String> {
    let version = obj.version.as_deref()?;
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    // Each field with its length first: ("ab", "c") and ("a", "bc") differ.
    for field in [identity.as_bytes(), obj.path.as_bytes(), version.as_bytes()] {
        h.update(&(field.len() as u64).to_le_bytes());
        h.update(field);
    }
    h.update(&obj.size.to_le_bytes());
    let mut hex = crate::digest::hex(h.finish().as_ref());
    hex.truncate(KEY_HEX);
    Some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(path: &str, version: Option<&str>, size: u64) -> ObjectMeta {
        ObjectMeta {
            path: path.into(),
            size,
            version: version.map(Into::into),
            md5: None,
        }
    }

    #[test]
    fn the_key_changes_with_every_part_of_the_identity_and_nothing_else() {
        let k = key("blob:http://a/x", &obj("d/f.bin", Some("0x1"), 10)).unwrap();
        assert_eq!(k.len(), KEY_HEX);
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
        // The same object again: the same key (the MD5 is no part of it).
        let mut same = obj("d/f.bin", Some("0x1"), 10);
        same.md5 = Some([7; 16]);
        assert_eq!(key("blob:http://a/x", &same).unwrap(), k);
        for other in [
            key("blob:http://a/y", &obj("d/f.bin", Some("0x1"), 10)),
            key("file:http://a/x", &obj("d/f.bin", Some("0x1"), 10)),
            key("blob:http://a/x", &obj("d/g.bin", Some("0x1"), 10)),
            key("blob:http://a/x", &obj("d/f.bin", Some("0x2"), 10)),
            key("blob:http://a/x", &obj("d/f.bin", Some("0x1"), 11)),
        ] {
            assert_ne!(other.unwrap(), k);
        }
    }

    #[test]
    fn fields_cannot_run_into_each_other_and_an_unversioned_object_has_no_key() {
        assert_ne!(
            key("ab", &obj("c", Some("v"), 1)),
            key("a", &obj("bc", Some("v"), 1))
        );
        assert_eq!(key("blob:x", &obj("f", None, 1)), None);
    }
}
