# pairchat，简体中文：页面 "/"、iframe "/widget" 和嵌入代码显示的所有文字。
# Project Fluent 语法（https://projectfluent.org/fluent/guide/）。
#
# To add a key: add it to ../en/pairchat.ftl first (the reference, with comments on each key),
# then here and in ../ru/pairchat.ftl with the same { $variables }. `cargo test i18n` fails when
# a key or a variable is missing in any language. See README, "Languages".
# 中文没有复数变化：数字直接写 { $count }。

## 语言

language-name = 中文
language-switch = 语言

## 页面 "/" 和 "/widget"

page-title = pairchat — 与随机的陌生人聊天
page-description = 与随机陌生人一对一匿名文字聊天。无需注册；聊天记录不会保存。
page-tagline = 与随机陌生人一对一匿名聊天
page-noscript = pairchat 需要 JavaScript 才能为你匹配陌生人。请启用后重新加载页面。
widget-noscript = pairchat 需要 JavaScript。
page-keys = 键盘：按 Esc 开始聊天；聊天中连按两次 Esc 结束。
page-privacy = 你写的任何内容都不会被保存。
embed-failed = 聊天加载失败，请稍后再试。

## 聊天顶栏

brand = pairchat
online-count = { $count } 人在线
badge-new-chat = 新聊天
badge-new-message = 新消息
blink-title = *** 新消息 ***

## 初始界面

idle-label = 欢迎
idle-title = 与随机的陌生人聊天
idle-intro = pairchat 会为你随机匹配另一位访客，进行私密的文字聊天。无需注册，也不用名字。
idle-how = 使用方法
idle-step-start = 点击“{ $start }”{ $keys }。
idle-step-start-keys = （或按 Esc）
idle-step-wait = 稍等片刻，我们正在为你寻找陌生人。
idle-step-talk = 打个招呼吧。{ $keysSend }聊完后点击两次“{ $end }”{ $keysEnd }。
idle-step-talk-keys-send = 按 Enter 发送，Shift+Enter 换行。
idle-step-talk-keys-end = （或按两次 Esc）
idle-note = { $saved }对话结束后消息即消失。请友善待人，不要透露个人信息。
idle-note-saved = 聊天记录不会保存。
idle-start-button = 开始聊天

## 连接、等待、重试

connecting-label = 正在连接
connecting = 正在连接服务器…
cancel-button = 取消
waiting-label = 等待中
waiting = 正在寻找陌生人…
waiting-alone = 现在只有你一个人在这里——仍在继续寻找。
check-text = 你的网络已发起了很多聊天：浏览器正在先进行一次快速验证。
check-done = 验证完成。正在寻找陌生人…
check-failed = 你的浏览器无法完成服务器要求的验证（需要 https 页面）。请稍后再试。
check-percent = { $percent }%
retrying-label = 正在重新连接
retry-countdown = 正在重新连接…（{ $secs } 秒后重试）
retry-now-button = 立即重试
retry-timed-out = 服务器没有响应。
retry-no-connection = 无法连接到服务器。
retry-restarting = 服务器正在重启。
retry-lost = 与服务器的连接已断开。

## 聊天

transcript-label = 对话
new-below = 新消息 ↓
chat-label = 你的消息
typing = 对方正在输入…
end-button = 结束
end-confirm = 确定吗？
send-button = 发送
sending = 发送中…
not-delivered = 未送达
not-confirmed = 未确认
message-input-label = 消息
message-input-placeholder = 输入消息
counter = { $used } / { $max }
from-me = 你
from-stranger = 陌生人
found = 已找到陌生人——打个招呼吧！
found-common = 已找到陌生人——打个招呼吧！你们都喜欢：{ $tags }

## 断线后恢复聊天（assets/js/resume.js）

resume-reconnecting = 连接已断开——正在重新连接…
resume-reconnected = 已重新连接。
resume-partner-away = 陌生人的连接已断开——正在等待对方…
resume-partner-back = 陌生人回来了。

## 兴趣（assets/js/interests.js）

interests-legend = 你的兴趣（可选）
interests-list-label = 你的兴趣
interests-input-label = 添加兴趣
interests-input-placeholder = 例如：音乐
interests-add = 添加
interests-hint-start = 最多添加 { $max } 个；我们会寻找与你有共同兴趣的人。
interests-hint-left = 还可以添加 { $count } 个；我们会寻找与你有共同兴趣的人。
interests-hint-full = 已有 { $max } 个，不能再添加了。
interests-hint-bad = 每个兴趣 1 到 { $max } 个字符。
interests-removed = 已删除 { $tag }。{ $rest }
interests-remove-label = 删除 { $tag }
interests-fallback = 如果没有人有共同兴趣，就和随机的陌生人聊天

## 聊天结束

closed-label = 对话已结束
closed = 本次对话已结束。
new-chat-button = 新聊天
left-by-you = 你离开了聊天。
left-by-stranger = 对方已断开连接。
closed-server-restart = 服务器关闭了连接（正在重启）。请重新开始。
closed-connection-lost = 与服务器的连接已断开。点击“新聊天”重新连接；它会一直尝试，直到服务器恢复。

## 服务器错误（按错误代码）

error-other = 出了点问题（{ $code }）。
error-not_paired = 你还没有聊天对象。
error-already_waiting = 你已经在等待聊天对象了。
error-already_paired = 你已经在对话中了。
error-empty_message = 空消息不会被发送。
error-message_too_long = 消息太长，未发送。
error-rate_limited = 你发送得太快了，这条没有发送。请稍等。
error-unavailable = 服务器暂时不可用，请稍后再试。
error-undelivered = 此消息无法送达：无法联系到对方。
error-resume_failed = 无法恢复该聊天（聊天已结束，或链接已被使用）。
error-bad_interests = 兴趣最多 5 个词或短语，每个 1 到 32 个字符。
error-bad_report = 举报未被接受。
error-bad_token = 这次聊天已无法再举报。
error-already_reported = 你已经举报过这次聊天了。

## 举报与封禁

report-button = 举报
report-title = 举报这位陌生人
report-reason = 原因？
report-reason-spam = 垃圾信息或广告
report-reason-harassment = 骚扰或仇恨言论
report-reason-sexual = 色情内容
report-reason-under_age = 未成年人
report-reason-other = 其他
report-note = 还有要补充的吗？（可选，最多 { $max } 个字符）
report-evidence-live = 本次聊天的最后几条消息（最多 20 条，包括你和对方的）会随举报一起发送给管理员。举报会结束本次聊天。
report-evidence-later = 本次聊天的最后几条消息（最多 20 条，包括你和对方的）会随举报一起发送给管理员。
report-send = 发送举报
report-no-reason = 请选择一个原因。
report-failed = 举报发送失败，请重试。
report-sent = 谢谢——你的举报已发送给管理员。
report-left = 你举报了对方并离开了聊天。
banned-until = 你被禁止使用本聊天，直到 { $until }。
banned-reason = 原因：{ $reason }
banned-appeal = 申诉方式：
