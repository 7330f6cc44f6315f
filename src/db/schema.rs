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
    chat_user (rid) {
        rid -> BigInt,
        chat_id -> BigInt,
        created_at -> Timestamp,
        visitor -> BigInt,
        node -> BigInt,
    }
}

diesel::joinable!(chat_user -> chat (chat_id));

diesel::allow_tables_to_appear_in_same_query!(chat, chat_user,);
