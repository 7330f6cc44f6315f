// @generated automatically by Diesel CLI.

diesel::table! {
    admin_account (id) {
        id -> BigInt,
        name -> Text,
        password_hash -> Text,
        session_epoch -> BigInt,
        created_ms -> BigInt,
    }
}

diesel::table! {
    admin_audit (id) {
        id -> BigInt,
        at_ms -> BigInt,
        admin -> Text,
        action -> Text,
        detail -> Text,
    }
}

diesel::table! {
    admin_login_failure (id) {
        id -> BigInt,
        subject -> BigInt,
        at_ms -> BigInt,
    }
}

diesel::table! {
    ban (id) {
        id -> BigInt,
        kind -> Text,
        target -> BigInt,
        reason -> Text,
        created_ms -> BigInt,
        expires_ms -> BigInt,
        created_by -> Text,
        lifted -> Bool,
    }
}

diesel::table! {
    chat (id) {
        id -> BigInt,
        is_completed -> Bool,
        created_at -> Timestamp,
        queued -> BigInt,
        visitor -> BigInt,
        interests -> Text,
        lang -> Text,
        fallback_at -> BigInt,
    }
}

diesel::table! {
    challenge_flag (address) {
        address -> BigInt,
        expires_at -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    chat_user (rid) {
        rid -> BigInt,
        chat_id -> BigInt,
        created_at -> Timestamp,
        visitor -> BigInt,
        node -> BigInt,
    }
}

diesel::table! {
    node (id) {
        id -> BigInt,
        clustered -> Bool,
        started_at -> Timestamp,
    }
}

diesel::table! {
    report (id) {
        id -> BigInt,
        created_ms -> BigInt,
        node -> BigInt,
        reason -> Text,
        note -> Text,
        reported -> BigInt,
        reported_address -> BigInt,
        reporter -> BigInt,
        evidence -> Text,
        dismissed -> Bool,
    }
}

diesel::table! {
    setting (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::joinable!(chat_user -> chat (chat_id));

diesel::allow_tables_to_appear_in_same_query!(
    admin_account,
    admin_audit,
    admin_login_failure,
    ban,
    challenge_flag,
    chat,
    chat_user,
    node,
    report,
    setting,
);
