# pairchat, русский: все слова, которые показывают страница "/", iframe "/widget" и встраивание.
# Синтаксис Project Fluent (https://projectfluent.org/fluent/guide/).
#
# To add a key: add it to ../en/pairchat.ftl first (the reference, with comments on each key),
# then here and in ../zh/pairchat.ftl with the same { $variables }. `cargo test i18n` fails when
# a key or a variable is missing in any language. See README, "Languages".
# Числа выбирают форму: { $count -> [one] … [few] … *[many] … } (1 человек, 2 человека,
# 5 человек).

## Язык

language-name = Русский
language-switch = Язык

## Страница "/" и "/widget"

page-title = pairchat — поговорите со случайным незнакомцем
page-description = Анонимный чат один на один со случайным незнакомцем. Без регистрации; переписка не сохраняется.
page-tagline = Анонимный чат один на один со случайным незнакомцем
page-noscript = Чтобы соединить вас с собеседником, pairchat нужен JavaScript. Включите его и перезагрузите страницу.
widget-noscript = pairchat нужен JavaScript.
page-keys = Клавиатура: Esc начинает чат; в чате Esc дважды завершает его.{ " " }
page-privacy = Ничего из написанного не сохраняется.
embed-failed = Не удалось загрузить чат. Попробуйте позже.

## Верхняя строка чата

brand = pairchat
online-count = { $count ->
    [one] { $count } человек в сети
    [few] { $count } человека в сети
   *[many] { $count } человек в сети
}
badge-new-chat = Новый чат
badge-new-message = Новое сообщение
blink-title = *** Новое сообщение ***

## Начальный экран

idle-label = Добро пожаловать
idle-title = Поговорите со случайным незнакомцем
idle-intro = pairchat соединяет вас с другим посетителем, выбранным случайно, для личной текстовой переписки. Без регистрации и без имён.
idle-how = Как это работает
idle-step-start = Нажмите «{ $start }»{ $keys }.
idle-step-start-keys = { " " }(или Esc)
idle-step-wait = Подождите немного, пока мы ищем собеседника.
idle-step-talk = Поздоровайтесь. { $keysSend }Когда закончите, нажмите «{ $end }» дважды{ $keysEnd }.
idle-step-talk-keys-send = Enter отправляет, Shift+Enter начинает новую строку.{ " " }
idle-step-talk-keys-end = { " " }(или дважды Esc)
idle-note = { $saved } Сообщения исчезают, когда разговор заканчивается. Будьте вежливы и не сообщайте личных данных.
idle-note-saved = Переписка не сохраняется.
idle-start-button = Начать чат

## Подключение, ожидание, повтор

connecting-label = Подключение
connecting = Подключение к серверу…
cancel-button = Отмена
waiting-label = Ожидание
waiting = Ищем собеседника…
waiting-alone = Сейчас здесь никого, кроме вас, — продолжаем искать.
check-text = Из вашей сети начато много чатов: браузер сначала проходит быструю проверку.
check-done = Проверка пройдена. Ищем собеседника…
check-failed = Браузер не смог пройти проверку, которую требует сервер (нужна страница по https). Попробуйте позже.
check-percent = { $percent } %
retrying-label = Переподключение
retry-countdown = Переподключение… (повтор через { $secs } с)
retry-now-button = Повторить сейчас
retry-timed-out = Сервер не ответил.
retry-no-connection = Не удалось подключиться к серверу.
retry-restarting = Сервер перезапускается.
retry-lost = Соединение с сервером потеряно.

## Чат

transcript-label = Переписка
new-below = Новое сообщение ↓
chat-label = Ваше сообщение
typing = Собеседник печатает…
end-button = Завершить
end-confirm = Точно?
send-button = Отправить
sending = Отправка…
not-delivered = Не доставлено
not-confirmed = Не подтверждено
message-input-label = Сообщение
message-input-placeholder = Напишите сообщение
counter = { $used } / { $max }
from-me = Вы
from-stranger = Собеседник
found = Собеседник найден — поздоровайтесь!
found-common = Собеседник найден — поздоровайтесь! Вам обоим нравится: { $tags }

## Возобновление чата после обрыва связи (assets/js/resume.js)

resume-reconnecting = Соединение потеряно — переподключаемся…
resume-reconnected = Соединение восстановлено.
resume-partner-away = У собеседника пропала связь — ждём его…
resume-partner-back = Собеседник вернулся.

## Интересы (assets/js/interests.js)

interests-legend = Ваши интересы (необязательно)
interests-list-label = Ваши интересы
interests-input-label = Добавить интерес
interests-input-placeholder = например, музыка
interests-add = Добавить
interests-hint-start = Добавьте до { $max }; мы ищем того, у кого есть общий интерес.
interests-hint-left = { $count ->
    [one] Можно добавить ещё { $count }; мы ищем того, у кого есть общий интерес.
    [few] Можно добавить ещё { $count }; мы ищем того, у кого есть общий интерес.
   *[many] Можно добавить ещё { $count }; мы ищем того, у кого есть общий интерес.
}
interests-hint-full = Это { $max } — больше добавить нельзя.
interests-hint-bad = Интерес — от 1 до { $max } символов.
interests-removed = Удалено: { $tag }. { $rest }
interests-remove-label = Удалить { $tag }
interests-fallback = Говорить со случайным собеседником, если общих интересов нет

## Конец чата

closed-label = Разговор окончен
closed = Этот разговор окончен.
new-chat-button = Новый чат
left-by-you = Вы вышли из чата.
left-by-stranger = Собеседник отключился.
closed-server-restart = Сервер закрыл соединение (он перезапускается). Начните заново.
closed-connection-lost = Соединение с сервером потеряно. Нажмите «Новый чат», чтобы подключиться снова; попытки продолжатся, пока сервер не вернётся.

## Ошибки сервера, по кодам

error-other = Что-то пошло не так ({ $code }).
error-not_paired = У вас пока нет собеседника.
error-already_waiting = Вы уже ждёте собеседника.
error-already_paired = Вы уже в разговоре.
error-empty_message = Пустые сообщения не отправляются.
error-message_too_long = Сообщение слишком длинное и не отправлено.
error-rate_limited = Вы отправляете слишком быстро; это не отправлено. Подождите немного.
error-unavailable = Сервер сейчас недоступен; попробуйте чуть позже.
error-undelivered = Сообщение не доставлено: собеседник недоступен.
error-resume_failed = Этот чат нельзя возобновить (он закончился, или ссылка уже использована).
error-bad_interests = Интересы — не больше 5 слов или коротких фраз, каждая от 1 до 32 символов.
error-bad_report = Жалоба не принята.
error-bad_token = На этот чат больше нельзя пожаловаться.
error-already_reported = Вы уже пожаловались на этот чат.

## Жалобы и блокировки

report-button = Пожаловаться
report-title = Пожаловаться на собеседника
report-reason = Причина?
report-reason-spam = Спам или реклама
report-reason-harassment = Оскорбления или ненависть
report-reason-sexual = Сексуальный контент
report-reason-under_age = Несовершеннолетний
report-reason-other = Другое
report-note = Хотите что-то добавить? (необязательно, до { $max } { $max ->
    [one] символа
   *[other] символов
})
report-evidence-live = Последние сообщения этого чата (до 20, ваши и собеседника) отправятся модераторам вместе с жалобой. Жалоба завершает чат.
report-evidence-later = Последние сообщения этого чата (до 20, ваши и собеседника) отправятся модераторам вместе с жалобой.
report-send = Отправить жалобу
report-no-reason = Выберите причину.
report-failed = Не удалось отправить жалобу. Попробуйте ещё раз.
report-sent = Спасибо — жалоба отправлена модераторам.
report-left = Вы пожаловались на собеседника и вышли из чата.
banned-until = Вам закрыт доступ к этому чату до { $until }.
banned-reason = Причина: { $reason }
banned-appeal = Обжаловать:
