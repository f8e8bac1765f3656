"""Details pulled out of Chinese and English complaints."""

from __future__ import annotations

import pytest

from processor.classify import extract_details

from .mails import mail


def details(body: str, subject: str = "complaint"):
    return extract_details(mail(subject=subject, body=body))


@pytest.mark.parametrize("body, expected", [
    ("11月3日下午3点打的电话", ("11月3日下午3点",)),
    ("2024年11月3日 15:30 掉线", ("2024年11月3日 15:30",)),
    ("昨天晚上八点半又断了", ("昨天晚上八点半",)),
    ("上周五开始就这样", ("上周五",)),
    ("It happened on November 3rd, at 3pm.", ("November 3rd, at 3pm",)),
    ("Since 4 Nov 2024 the app crashes", ("4 Nov 2024",)),
    ("Yesterday at 10:15 am the line died", ("Yesterday at 10:15 am",)),
    ("on 2024-11-03 we lost calls", ("2024-11-03",)),
    ("Last Monday it happened", ("Last Monday",)),
])
def test_times(body, expected):
    assert details(body).times == expected


@pytest.mark.parametrize("body, expected", [
    ("每天都掉线，而且经常卡", ("每天", "经常")),
    ("已经打了多次，三次都没人接", ("多次", "三次")),
    ("It happens every day, several times an hour", ("every day", "several times")),
    ("The calls drop repeatedly", ("repeatedly",)),
])
def test_frequency(body, expected):
    assert details(body).frequency == expected


def test_scenario_and_impact_are_the_sentences_that_say_them():
    found = details("在和客户通话的时候突然断线。这严重影响了我们的业务。其他没什么。")
    assert found.scenario == ("在和客户通话的时候突然断线。",)
    assert found.impact == ("这严重影响了我们的业务。",)
    english = details("The line drops while we are taking orders. We lost three customers today.")
    assert english.scenario == ("The line drops while we are taking orders.",)
    assert english.impact == ("We lost three customers today.",)


@pytest.mark.parametrize("body, expected", [
    ("工号 1234 的客服", ("1234",)),
    ("工号为A8023", ("A8023",)),
    ("8023号客服态度很差", ("8023",)),
    ("the agent ID was 4471", ("4471",)),
    ("Agent #2290 hung up", ("2290",)),
])
def test_agent_ids(body, expected):
    assert details(body).agent_ids == expected


def test_phone_numbers_in_chinese_and_international_forms():
    found = details("手机 138-1234-5678，座机 021-54321234，热线 400-820-1234，UK +44 7700 900123")
    assert found.phone_numbers == ("138-1234-5678", "021-54321234", "400-820-1234",
                                   "+44 7700 900123")


@pytest.mark.parametrize("body, expected", [
    ("订单号：20241008551234", ("20241008551234",)),
    ("投诉单号C-000812", ("C-000812",)),
    ("合同编号 HT-2024-031", ("HT-2024-031",)),
    ("ticket number 889123 and invoice INV-2024-11873", ("889123", "INV-2024-11873")),
    ("our contract terms say", ()),
])
def test_order_ticket_and_contract_numbers(body, expected):
    assert details(body).order_numbers == expected


@pytest.mark.parametrize("body, expected", [
    ("系统又坏了。要求三天内修复。", ("要求三天内修复。",)),
    ("希望给我一个说法", ("希望给我一个说法",)),
    ("请尽快处理", ("请尽快处理",)),
    ("It broke. I expect a fix by Friday.", ("I expect a fix by Friday.",)),
    ("I want a refund.", ("I want a refund.",)),
    ("I'd like an apology.", ("I'd like an apology.",)),
])
def test_expected_resolution(body, expected):
    assert details(body).expected_resolution == expected


def test_what_was_said_takes_quotes_and_reported_speech():
    found = details("客服说“你自己不会听啊”。")
    assert found.what_was_said[0] == "你自己不会听啊"
    english = details('He said "deal with it" and hung up.')
    assert english.what_was_said == ("deal with it", 'He said "deal with it" and hung up.')


def test_nothing_found_in_a_plain_mail():
    assert details("Hello.", subject="Hi").as_json() == {
        name: [] for name in details("Hello.", subject="Hi").as_json()}


def test_details_come_from_the_subject_too():
    assert details("see subject", subject="工号 5521 态度差").agent_ids == ("5521",)
