//! The Lua scripts, one file each beside this one. Each touches only keys that share one hash
//! tag, so each runs on Redis Cluster as well.
//!
//! `redis::Script` sends `EVALSHA` and loads the script on `NOSCRIPT`, so a restarted or newly
//! failed-over Redis needs no warm-up.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!($file)));
    };
}

script!(FAMILY_CREATE, "family_create.lua");
script!(FAMILY_ROTATE, "family_rotate.lua");
script!(FAMILY_REVOKE, "family_revoke.lua");
script!(FEED_APPEND, "feed_append.lua");
script!(FEED_READ, "feed_read.lua");
script!(SUBJECT_REVOKE, "subject_revoke.lua");
script!(LIFETIMES_RECORD, "lifetimes_record.lua");
script!(TOKEN_REVOKE, "token_revoke.lua");
script!(RECORD_CREATE, "record_create.lua");
script!(RECORD_DELETE, "record_delete.lua");
script!(RECORD_REPLACE_IF, "record_replace_if.lua");
script!(FAILURE_RECORD, "failure_record.lua");
script!(NAME_CLAIM, "name_claim.lua");
script!(ATTEMPT_RESERVE, "attempt_reserve.lua");
script!(ATTEMPT_RELEASE, "attempt_release.lua");
script!(ONCE_USE, "once_use.lua");
script!(CODE_CREATE, "code_create.lua");
script!(CODE_REDEEM, "code_redeem.lua");
