// static/js/format.js writes live values as the server writes them into pages: the same cases
// as the server's unit test (src/web/view.rs), from tests/data/format-cases.json.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import * as fmt from "../../static/js/format.js";
import { ROOT } from "./lib.mjs";

const cases = JSON.parse(readFileSync(join(ROOT, "tests/data/format-cases.json"), "utf8"));

test("numbers round like Rust's format! (ties to even, -0 keeps its sign)", () => {
  for (const [v, want] of cases.temp) assert.equal(fmt.temp(v), want, `temp(${v})`);
  for (const [v, want] of cases.tempF) assert.equal(fmt.temp(v, "F"), want, `temp(${v}, F)`);
  for (const [v, want] of cases.percent) assert.equal(fmt.percent(v), want, `percent(${v})`);
  for (const [v, want] of cases.battery) assert.equal(fmt.battery(v), want, `battery(${v})`);
});

test("alarms in words, as describe_alarm_value", () => {
  for (const [alarms, want] of cases.alarms) assert.equal(fmt.describeAlarms(alarms), want);
});

test("event log lines, as EventLine::parse", () => {
  for (const [msg, want] of cases.events) {
    const label = fmt.eventLabel(msg.type);
    if (want === null) {
      assert.equal(label, undefined, msg.type);
      continue;
    }
    const d = msg.data || {};
    assert.deepEqual(
      { label, summary: fmt.eventSummary(msg.type, d), alarm: fmt.hasAlarms(d) },
      want,
    );
  }
});

const alarmCases = JSON.parse(readFileSync(join(ROOT, "tests/e2e/alarm-cases.json"), "utf8"));

test("alarms and rules in words, as AlarmFacts::texts and delay_words", () => {
  for (const [alarm, want] of alarmCases.alarms) assert.deepEqual(fmt.alarmTexts(alarm, alarm.unit ?? "C"), want, JSON.stringify(alarm));
  for (const [secs, want] of alarmCases.delays) assert.equal(fmt.delayWords(secs), want, `delay ${secs}`);
});
