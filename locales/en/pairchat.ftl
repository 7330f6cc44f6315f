# pairchat, English: every word the page "/", the iframe "/widget" and the embed show.
# Project Fluent syntax (https://projectfluent.org/fluent/guide/).
#
# To add a key: add `my-key = Text` here, then the same key in ../ru/pairchat.ftl and
# ../zh/pairchat.ftl, with the same { $variables }. `cargo test i18n` fails when a key or a
# variable is missing in any language. Use it from the JavaScript with t('my-key', { name: value })
# (assets/js/i18n.js), from a template with {{ t.get("my-key") }}.
# Keys used by the templates are marked (page); the rest are the chat's (assets/js/).
# A variable written { $name } inside a sentence may stand for an element the code builds
# (a bold word, a keyboard hint): keep it, move it where your language needs it.
# Numbers pick their plural form with a select: { $count -> [one] … *[other] … }.

## The language itself

# The name of this language, in this language: shown in the language switch.
language-name = English
# (page) The language switch's label, for screen readers.
language-switch = Language

## The page "/" and "/widget" (templates/)

# (page)
page-title = pairchat — talk to a random stranger
# (page)
page-description = Anonymous one-to-one text chat with a random stranger. No account; chat history is not saved.
# (page)
page-tagline = Anonymous one-to-one chat with a random stranger
# (page)
page-noscript = pairchat needs JavaScript to connect you with a stranger. Please enable it and reload the page.
# (page) The iframe's, where there is little room.
widget-noscript = pairchat needs JavaScript.
# (page) Hidden on touch screens; ends with the space (if any) before page-privacy.
page-keys = Keyboard: Esc starts a chat; in a chat, Esc twice ends it.{ " " }
# (page)
page-privacy = Nothing you write is stored.
# embed.js, when the chat cannot be loaded on another site.
embed-failed = The chat could not be loaded. Please try again later.

## The chat's bar

brand = pairchat
# $count: visitors connected now.
online-count = { $count } online
badge-new-chat = New chat
badge-new-message = New message
# The tab's title, blinking while a message waits in a background tab.
blink-title = *** New message ***

## The idle view

idle-label = Welcome
idle-title = Talk to a random stranger
idle-intro = pairchat pairs you with one other visitor, picked at random, for a private text chat. No account, no names.
idle-how = How it works
# $start: the words of idle-start-button in bold; $keys: idle-step-start-keys (hidden on touch screens).
idle-step-start = Press { $start }{ $keys }.
idle-step-start-keys = { " " }(or Esc)
idle-step-wait = Wait a moment while we find a stranger.
# $keysSend: idle-step-talk-keys-send, $keysEnd: idle-step-talk-keys-end (both hidden on touch
# screens); $end: the word of end-button in bold.
idle-step-talk = Say hi. { $keysSend }Press { $end } twice{ $keysEnd } when you are done.
idle-step-talk-keys-send = Enter sends, Shift+Enter starts a new line.{ " " }
idle-step-talk-keys-end = { " " }(or Esc twice)
# $saved: idle-note-saved, in bold.
idle-note = { $saved } Messages are gone when the conversation ends. Be kind, and keep personal details to yourself.
idle-note-saved = Chat history is not saved.
idle-start-button = Start a chat

## Connecting, waiting, retrying

connecting-label = Connecting
connecting = Connecting to server…
cancel-button = Cancel
waiting-label = Waiting
waiting = Waiting for a stranger…
waiting-alone = You're the only one here right now — still looking.
check-text = Many chats were started from your network: your browser is doing a quick check first.
check-done = Check done. Waiting for a stranger…
check-failed = Your browser could not do the check this server asks for (it needs an https page). Please try again later.
# $percent: 0 to 100.
check-percent = { $percent } %
retrying-label = Reconnecting
# $secs: whole seconds until the next attempt.
retry-countdown = Reconnecting… (retrying in { $secs } s)
retry-now-button = Try now
retry-timed-out = The server did not answer.
retry-no-connection = Could not connect to the server.
retry-restarting = The server is restarting.
retry-lost = The connection to the server was lost.

## The chat

transcript-label = Conversation
new-below = New message ↓
chat-label = Your message
typing = Stranger is typing…
end-button = End
end-confirm = Really?
send-button = Send
sending = Sending…
not-delivered = Not delivered
# A message sent just before one's own connection dropped: not known to have arrived.
not-confirmed = Not confirmed
message-input-label = Message
message-input-placeholder = Type a message
# $used and $max: characters in the box and the most a message may have.
counter = { $used } / { $max }
from-me = You
from-stranger = Stranger
found = Stranger found — say hi!
# $tags: the interests both gave, comma-separated.
found-common = Stranger found — say hi! You both like: { $tags }

## Resuming a chat after a dropped connection (assets/js/resume.js)

resume-reconnecting = Connection lost — reconnecting…
resume-reconnected = Reconnected.
resume-partner-away = Stranger's connection dropped — waiting for them…
resume-partner-back = Stranger is back.

## Interests on the idle view (assets/js/interests.js)

interests-legend = Your interests (optional)
interests-list-label = Your interests
interests-input-label = Add an interest
interests-input-placeholder = e.g. music
interests-add = Add
# $max: how many interests a visitor may give (5).
interests-hint-start = Add up to { $max }; we look for someone who shares one.
# $count: how many more may be added.
interests-hint-left = { $count ->
    [one] Add { $count } more; we look for someone who shares one.
   *[other] Add up to { $count } more; we look for someone who shares one.
}
interests-hint-full = That is { $max } — the most you can add.
# $max: the most characters in one interest (32).
interests-hint-bad = An interest is 1 to { $max } characters.
# $tag: the interest removed; $rest: one of the hints above.
interests-removed = Removed { $tag }. { $rest }
# The label of a tag's × button, for screen readers.
interests-remove-label = Remove { $tag }
interests-fallback = Talk to a random stranger if nobody shares them

## The end of a chat

closed-label = Conversation over
closed = This conversation is over.
new-chat-button = New chat
left-by-you = You left the chat.
left-by-stranger = Stranger has disconnected.
closed-server-restart = The server closed the connection (it is restarting). Please start over.
closed-connection-lost = The connection to the server was lost. Press New chat to reconnect; it keeps trying until the server is back.

## Errors from the server, by their code (README, Protocol)

# $code: the server's error code, for an error without a text of its own here.
error-other = Something went wrong ({ $code }).
error-not_paired = You have no partner to talk to yet.
error-already_waiting = You are already waiting for a partner.
error-already_paired = You are already in a conversation.
error-empty_message = Empty messages are not sent.
error-message_too_long = That message is too long; it was not sent.
error-rate_limited = You are sending too fast; that was not sent. Wait a moment.
error-unavailable = The server is unavailable right now; please try again shortly.
error-undelivered = This message could not be delivered: your partner could not be reached.
error-resume_failed = That chat cannot be resumed (it has ended, or the link was used already).
error-bad_interests = Interests are up to 5 words or short phrases, each 1 to 32 characters.
error-bad_report = The report was not accepted.
error-bad_token = This chat can no longer be reported.
error-already_reported = You have reported this chat already.

## Reports and bans (assets/js/report.js)

report-button = Report
report-title = Report this stranger
report-reason = Why?
report-reason-spam = Spam or advertising
report-reason-harassment = Harassment or hate
report-reason-sexual = Sexual content
report-reason-under_age = Under age
report-reason-other = Something else
# $max: the longest note, in characters.
report-note = Anything to add? (optional, up to { $max } characters)
report-evidence-live = The last messages of this chat (up to 20, yours and the stranger’s) go to the moderators with your report. Reporting ends this chat.
report-evidence-later = The last messages of this chat (up to 20, yours and the stranger’s) go to the moderators with your report.
report-send = Send report
report-no-reason = Choose a reason.
report-failed = The report could not be sent. Please try again.
report-sent = Thanks — your report was sent to the moderators.
report-left = You reported the stranger and left the chat.
# $until: a date and time, written the visitor's way.
banned-until = You are banned from this chat until { $until }.
# $reason: the moderators' words, as they wrote them.
banned-reason = Reason: { $reason }
# Followed by the server's appeal text or link.
banned-appeal = To appeal:
