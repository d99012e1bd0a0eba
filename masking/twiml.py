"""TwiML for masked calls and texts (pure: inputs in, XML out), with the official twilio builders."""

from __future__ import annotations

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

# Said to a caller whose session is unknown, closed or expired; keyed by language.
ENDED = {
    "en": "Sorry, this conversation has ended, so we cannot connect your call. Goodbye.",
    "de": "Dieses Gespräch ist leider beendet, daher können wir Ihren Anruf nicht verbinden. Auf Wiederhören.",
    "zh": "抱歉，此对话已结束，我们无法为您接通电话。再见。",
}
ENDED_SMS = {
    "en": "This conversation has ended; your message was not delivered.",
    "de": "Dieses Gespräch ist beendet; Ihre Nachricht wurde nicht zugestellt.",
    "zh": "此对话已结束，您的消息未送达。",
}
RECORDED = {
    "en": "This call is recorded for quality and safety.",
    "de": "Dieses Gespräch wird zur Qualitätssicherung und zu Ihrer Sicherheit aufgezeichnet.",
    "zh": "为了服务质量与安全，本次通话将被录音。",
}
VOICES = {"en": "en-US", "de": "de-DE", "zh": "cmn-CN"}


def language(locale: str) -> str:
    return locale.replace("_", "-").split("-")[0].lower()


def _say_language(locale: str) -> str:
    return VOICES.get(language(locale), "en-US")


def _text(table: dict[str, str], locale: str) -> tuple[str, str]:
    lang = language(locale) if language(locale) in table else "en"
    return table[lang], VOICES[lang]


def ended(locale: str) -> str:
    response = VoiceResponse()
    text, voice_language = _text(ENDED, locale)
    response.say(text, language=voice_language)
    response.hangup()
    return str(response)


def ended_sms(locale: str) -> str:
    response = MessagingResponse()
    response.message(_text(ENDED_SMS, locale)[0])
    return str(response)


def connect(*, to: str, caller_id: str, locale: str, record: bool, action: str, recording_callback: str) -> str:
    """Dial the other participant's real number, showing them a proxy number."""
    response = VoiceResponse()
    options: dict[str, str] = {"caller_id": caller_id, "action": action}
    if record:
        text, voice_language = _text(RECORDED, locale)
        response.say(text, language=voice_language)
        options.update(record="record-from-answer-dual", recording_status_callback=recording_callback)
    dial = response.dial(**options)
    dial.number(to)
    return str(response)


def escalation_call(*, speech: str, locale: str, gather_action: str | None) -> str:
    """The escalation call's message; with a bridge, pressing 1 goes to `gather_action`."""
    response = VoiceResponse()
    if gather_action is None:
        response.say(speech, language=_say_language(locale))
        response.hangup()
        return str(response)
    gather = response.gather(num_digits=1, action=gather_action, timeout=8)
    gather.say(speech, language=_say_language(locale))
    response.say(speech, language=_say_language(locale))  # said once more if nothing was pressed
    response.hangup()
    return str(response)


def empty_messaging() -> str:
    return str(MessagingResponse())


def hangup() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)
