//! Hashes made by the systems users come from (Werkzeug 3.1, bcrypt, Django's algorithm,
//! passlib 1.7, argon2-cffi), for the password "correct horse".

use super::*;

const PASSWORD: &[u8] = b"correct horse";

const WERKZEUG_PBKDF2: &str = "pbkdf2:sha256:1000$5TLlvcP1iVirdSsn$40325dcf67e0185c6699fa646de2f8c86abf7ab7ad4e60296b4513d0737c059a";
const WERKZEUG_PBKDF2_DEFAULT: &str = "pbkdf2:sha256:1000000$eiKXe66v4cqhCVkQ$d9e80f2115547d998810cf3b22fcbf17b5a832482adc8c20be149a357c08afb2";
const WERKZEUG_SCRYPT: &str = "scrypt:1024:8:1$VwnpFJ6CUixCi3eU$20de068f89c9584aebc73d09354297b9f79f5c17dd0f70d309b94cab9d1889c17a1b05751c059ed4119ee56690d9faab68b7b7f3a6640ac154b9ca7cf65ce869";
const WERKZEUG_SCRYPT_DEFAULT: &str = "scrypt:32768:8:1$ZRJOwdJ6NvowNmM1$67d8d83a54ece00015db4dc2ecf905bfb69b4f57ca340134fd88539c32dcb68646ba6af7b8c4ab0c24bbe2b5b407b22ba3e55dc7a61b1fe80e600c9cb814f39c";
const BCRYPT_2B: &str = "$2b$04$Eoj89ramYZP0krHAwqsg/uvBCvWNlyMoJ4HMBSSeIRVoSHptvAZoO";
const DJANGO: &str =
    "pbkdf2_sha256$1000$abcdefghijklmnop$Ja730/3PvAVIEeMB2cAvpe/sLE4qsHOhJF2cTv/kqps=";
const PASSLIB_PBKDF2: &str =
    "$pbkdf2-sha256$1000$uDem1LpXilGqFSJEiLG2tg$XGUIGU/MvS2R0Q.JyErzHdCNfFpLm2QV6VdChbAV2r8";
const PASSLIB_SCRYPT: &str =
    "$scrypt$ln=10,r=8,p=1$lPJ+L2UsJWTsnbNWKuX8Xw$2jPH0kUT9Ef2UxWSoTvUFDCfPVVe2Xo+V5/Is5Vx/NQ";
const ARGON2ID: &str = "$argon2id$v=19$m=64,t=1,p=1$yzmHMMb4X4sx5pwTonSuNQ$+Usd7QvmhfDo61K+xtiB7Pn8bu6NoCqzrWwpqPvYmT8";
const ARGON2I: &str =
    "$argon2i$v=19$m=64,t=1,p=1$Y8wZ41zLmVOqtXaO0boXwg$8uusx3AOVNp8nWuwQTDM0qd1Agw7SR6fNZMCG6NlrnQ";

#[test]
fn hashes_from_werkzeug_django_bcrypt_and_passlib_verify_the_right_password_only() {
    for (text, scheme) in [
        (WERKZEUG_PBKDF2, Scheme::Pbkdf2Sha256),
        (WERKZEUG_SCRYPT, Scheme::Scrypt),
        (BCRYPT_2B, Scheme::Bcrypt),
        (DJANGO, Scheme::Pbkdf2Sha256),
        (PASSLIB_PBKDF2, Scheme::Pbkdf2Sha256),
        (PASSLIB_SCRYPT, Scheme::Scrypt),
    ] {
        let hash = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(hash.scheme(), scheme, "{text}");
        assert_eq!(hash.verify(PASSWORD), Some(true), "{text}");
        assert_eq!(hash.verify(b"correct horsf"), Some(false), "{text}");
        assert_eq!(hash.verify(b""), Some(false), "{text}");
    }
}

#[test]
fn bcrypt_variants_2a_and_2y_verify_like_2b() {
    // OpenBSD's test vector.
    let openbsd = parse("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW").unwrap();
    assert_eq!(openbsd.verify(b"U*U"), Some(true));
    assert_eq!(openbsd.verify(b"U*V"), Some(false));
    let y = parse(&BCRYPT_2B.replacen("$2b$", "$2y$", 1)).unwrap();
    assert_eq!(y.verify(PASSWORD), Some(true));
}

#[test]
fn the_defaults_of_werkzeug_3_are_within_the_ceilings() {
    assert_eq!(
        parse(WERKZEUG_PBKDF2_DEFAULT).unwrap().scheme(),
        Scheme::Pbkdf2Sha256
    );
    assert_eq!(
        parse(WERKZEUG_SCRYPT_DEFAULT).unwrap().scheme(),
        Scheme::Scrypt
    );
}

#[test]
fn argon2_hashes_are_accepted_for_the_service_to_verify_itself() {
    for (text, scheme) in [(ARGON2ID, Scheme::Argon2id), (ARGON2I, Scheme::Argon2i)] {
        let hash = parse(text).unwrap();
        assert_eq!(hash.scheme(), scheme);
        assert_eq!(hash.verify(PASSWORD), None);
        assert_eq!(Scheme::of(text), Some(scheme));
    }
}

#[test]
fn hashes_that_cost_more_than_the_ceilings_are_refused() {
    for text in [
        "pbkdf2:sha256:1000001$salt$40325dcf67e0185c6699fa646de2f8c86abf7ab7ad4e60296b4513d0737c059a",
        "pbkdf2_sha256$5000000$salt$Ja730/3PvAVIEeMB2cAvpe/sLE4qsHOhJF2cTv/kqps=",
        "scrypt:1048576:8:1$salt$20de068f89c9584aebc73d09354297b9f79f5c17dd0f70d309b94cab9d188900",
        "scrypt:32768:8:4$salt$20de068f89c9584aebc73d09354297b9f79f5c17dd0f70d309b94cab9d188900",
        "$scrypt$ln=20,r=8,p=1$lPJ+L2UsJWTsnbNWKuX8Xw$2jPH0kUT9Ef2UxWSoTvUFDCfPVVe2Xo+V5/Is5Vx/NQ",
        "$2b$15$Eoj89ramYZP0krHAwqsg/uvBCvWNlyMoJ4HMBSSeIRVoSHptvAZoO",
        "$argon2id$v=19$m=262144,t=3,p=1$yzmHMMb4X4sx5pwTonSuNQ$+Usd7QvmhfDo61K+xtiB7Pn8bu6NoCqzrWwpqPvYmT8",
        "$argon2id$v=19$m=64,t=100,p=1$yzmHMMb4X4sx5pwTonSuNQ$+Usd7QvmhfDo61K+xtiB7Pn8bu6NoCqzrWwpqPvYmT8",
    ] {
        assert!(
            matches!(parse(text), Err(HashError::TooCostly { .. })),
            "{text}: {:?}",
            parse(text)
        );
    }
}

#[test]
fn unknown_formats_are_refused_as_such() {
    for text in [
        "",
        "correct horse",
        "5f4dcc3b5aa765d61d8327deb882cf99",
        "$1$saltsalt$2vX0tkVH5Ik0Ck1ZyNb2t/",
        "$6$rounds=5000$salt$hash",
        "sha256$salt$hash",
        "$argon2d$v=19$m=64,t=1,p=1$yzmHMMb4X4sx5pwTonSuNQ$+Usd7QvmhfDo61K+xtiB7Pn8bu6NoCqzrWwpqPvYmT8",
        "bcrypt$$2b$04$Eoj89ramYZP0krHAwqsg/uvBCvWNlyMoJ4HMBSSeIRVoSHptvAZoO",
    ] {
        assert_eq!(parse(text), Err(HashError::UnknownFormat), "{text}");
    }
}

#[test]
fn malformed_hashes_of_a_known_format_say_what_is_wrong() {
    for text in [
        "pbkdf2:sha1:1000$salt$40325dcf67e0185c6699fa646de2f8c86abf7ab7ad4e60296b4513d0737c059a",
        "pbkdf2:sha256:1000$salt$not-hex",
        // A sign is no hex digit, though Rust's integer parser takes one.
        "pbkdf2:sha256:1000$salt$+0325dcf67e0185c6699fa646de2f8c86abf7ab7ad4e60296b4513d0737c059a",
        "pbkdf2:sha256:1000$$40325dcf",
        "pbkdf2:sha256:1000$salt",
        "pbkdf2:sha256:0$salt$40325dcf67e0185c6699fa646de2f8c86abf7ab7ad4e60296b4513d0737c059a",
        "pbkdf2:sha256:1000$salt$4032",
        "scrypt:1000:8:1$salt$20de068f89c9584aebc73d09354297b9f79f5c17dd0f70d309b94cab9d188900",
        "scrypt:1024:8$salt$20de068f89c9584aebc73d09354297b9f79f5c17dd0f70d309b94cab9d188900",
        "$scrypt$ln=10,r=8$lPJ+L2UsJWTsnbNWKuX8Xw$2jPH0kUT9Ef2UxWSoTvUFDCfPVVe2Xo+V5/Is5Vx/NQ",
        "$2b$04$short",
        "$argon2id$v=19$m=64,t=1,p=1$yzmHMMb4X4sx5pwTonSuNQ",
    ] {
        assert!(
            matches!(parse(text), Err(HashError::Malformed { .. })),
            "{text}: {:?}",
            parse(text)
        );
    }
}

#[test]
fn hashes_shaped_to_cost_more_than_their_parameters_say_are_refused() {
    let output_64 = "ab".repeat(64);
    let long_salt = "s".repeat(65);
    for text in [
        // p stretches scrypt's PBKDF2 pass over the salt; r its memory.
        format!("scrypt:2:1:262144$salt${output_64}"),
        format!("scrypt:2:262144:1$salt${output_64}"),
        format!("scrypt:2:64:1$salt${output_64}"),
        // A 64-byte PBKDF2 output is two runs of every iteration.
        format!("pbkdf2:sha256:1000000$salt${output_64}"),
    ] {
        assert!(
            matches!(parse(&text), Err(HashError::TooCostly { .. })),
            "{text}: {:?}",
            parse(&text)
        );
    }
    for text in [
        format!("scrypt:1024:8:1${long_salt}${output_64}"),
        format!("pbkdf2:sha256:1000${long_salt}${}", "ab".repeat(32)),
        format!("pbkdf2:sha256:1000$salt${}", "ab".repeat(300)),
    ] {
        assert!(
            matches!(parse(&text), Err(HashError::Malformed { .. })),
            "{text}: {:?}",
            parse(&text)
        );
    }
    assert!(parse(&format!("pbkdf2:sha256:500000$salt${output_64}")).is_ok());
}

#[test]
fn hashes_the_verifier_could_not_check_are_refused_at_import() {
    let bang = "!".repeat(53);
    for text in [
        format!("$2b$14${bang}"),
        "$2b$+4$Eoj89ramYZP0krHAwqsg/uvBCvWNlyMoJ4HMBSSeIRVoSHptvAZoO".to_owned(),
        "$argon2id$v=18$m=1024,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            .to_owned(),
        "$argon2id$v=19$m=1024,t=1,p=1$YWJjZA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            .to_owned(),
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQxM$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            .to_owned(),
    ] {
        assert!(
            matches!(parse(&text), Err(HashError::Malformed { .. })),
            "{text}: {:?}",
            parse(&text)
        );
    }
}
