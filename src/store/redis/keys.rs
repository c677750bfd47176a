//! Key names: which hash tag each key carries decides which keys a script may touch together
//! on Cluster (see the key layout in the parent module).

use crate::store::{Subject, SubjectKind};

/// Key names; see the module docs.
pub(super) struct Keys {
    pub(super) prefix: String,
}

impl Keys {
    pub(super) fn user(&self, username: &str) -> String {
        format!("{}{{users}}:user:{username}", self.prefix)
    }
    pub(super) fn users(&self) -> String {
        format!("{}{{users}}:index", self.prefix)
    }
    pub(super) fn client(&self, client_id: &str) -> String {
        format!("{}{{clients}}:client:{client_id}", self.prefix)
    }
    pub(super) fn clients(&self) -> String {
        format!("{}{{clients}}:index", self.prefix)
    }
    pub(super) fn family(&self, id: &str) -> String {
        format!("{}family:{{{id}}}", self.prefix)
    }
    pub(super) fn revoked(&self, jti: &str) -> String {
        format!("{}revoked:{{{jti}}}", self.prefix)
    }
    /// Set with a revocation that changed the list, until its feed event is appended.
    pub(super) fn revoked_event_owed(&self, jti: &str) -> String {
        format!("{}revoked:{{{jti}}}:owed", self.prefix)
    }
    /// A subject's cut-off, in the slot of its record so that both are read in one MGET.
    pub(super) fn not_before(&self, subject: &Subject) -> String {
        match subject {
            Subject::User(name) => format!("{}{{users}}:nb:{name}", self.prefix),
            Subject::Client(id) => format!("{}{{clients}}:nb:{id}", self.prefix),
        }
    }
    /// The token lifetimes kept (see `store::lifetimes`), beside the cut-offs of `kind`: one
    /// copy in each kind's slot, each raised by every record, so that a revocation reads them
    /// in its own script.
    pub(super) fn lifetimes(&self, kind: SubjectKind) -> String {
        match kind {
            SubjectKind::User => format!("{}{{users}}:lifetimes", self.prefix),
            SubjectKind::Client => format!("{}{{clients}}:lifetimes", self.prefix),
        }
    }
    /// A user's access cut-off (a change of roles), beside the user's other cut-off.
    pub(super) fn access_not_before(&self, username: &str) -> String {
        format!("{}{{users}}:anb:{username}", self.prefix)
    }
    /// Which kind of account holds a name, lowercased: names are compared without case.
    pub(super) fn name(&self, name: &str) -> String {
        format!("{}{{names}}:{}", self.prefix, name.to_ascii_lowercase())
    }
    pub(super) fn feed(&self) -> String {
        format!("{}{{feed}}:stream", self.prefix)
    }
    pub(super) fn feed_deadlines(&self) -> String {
        format!("{}{{feed}}:deadlines", self.prefix)
    }
    pub(super) fn failures(&self, key: &str) -> String {
        format!("{}failures:{{{key}}}", self.prefix)
    }
    /// A single-use marker (see `Store::use_once`).
    pub(super) fn once(&self, key: &str) -> String {
        format!("{}once:{{{key}}}", self.prefix)
    }
    /// An authorization code, by the SHA-256 of the code.
    pub(super) fn code(&self, key: &str) -> String {
        format!("{}code:{{{key}}}", self.prefix)
    }
    /// When a counter's last attempt was made; in the counter's slot.
    pub(super) fn last_attempt(&self, key: &str) -> String {
        format!("{}failures:{{{key}}}:last", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_script_share_a_hash_tag() {
        let keys = Keys {
            prefix: "lk:".to_owned(),
        };
        let tag = |key: &str| {
            let open = key.find('{').unwrap();
            let close = key[open..].find('}').unwrap() + open;
            key[open + 1..close].to_owned()
        };
        assert_eq!(tag(&keys.user("alice")), tag(&keys.users()));
        assert_eq!(tag(&keys.client("web")), tag(&keys.clients()));
        let alice = Subject::User(crate::domain::Username::parse("alice").unwrap());
        let web = Subject::Client(crate::domain::ClientId::parse("web").unwrap());
        assert_eq!(tag(&keys.user("alice")), tag(&keys.not_before(&alice)));
        assert_eq!(tag(&keys.client("web")), tag(&keys.not_before(&web)));
        assert_eq!(
            tag(&keys.lifetimes(alice.kind())),
            tag(&keys.not_before(&alice))
        );
        assert_eq!(
            tag(&keys.lifetimes(web.kind())),
            tag(&keys.not_before(&web))
        );
        assert_ne!(
            keys.not_before(&alice),
            keys.not_before(&Subject::Client(
                crate::domain::ClientId::parse("alice").unwrap()
            ))
        );
        assert_eq!(tag(&keys.feed()), tag(&keys.feed_deadlines()));
        assert_eq!(tag(&keys.family("F1")), "F1");
        assert!(keys.family("F1").starts_with("lk:"));
    }
}
