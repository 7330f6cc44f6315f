// @generated automatically by Diesel CLI.

diesel::table! {
    chat (id) {
        id -> BigInt,
        is_completed -> Bool,
        created_at -> Timestamp,
        queued -> BigInt,
        visitor -> BigInt,
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
    setting (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::joinable!(chat_user -> chat (chat_id));

diesel::allow_tables_to_appear_in_same_query!(challenge_flag, chat, chat_user, node, setting,);
