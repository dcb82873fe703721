"""KafkaLiveness, the state behind readiness and `consumer.kafka_lost` / `_restored`: each said
once per outage, also when the outage restarted the consumer. The figures it reports go to the
observer (the service's metrics); the lines themselves, against a real broker, are in
tests/integration/test_readiness.py."""

from __future__ import annotations

import io

import orjson
from aiokafka.errors import KafkaConnectionError

from consumers.events import MalformedCause
from consumers.health import KafkaLiveness, PartitionLag
from service.logs import configure_logging


class Watched:
    def __init__(self) -> None:
        self.up: list[bool] = []

    def events_received(self, topic: str, count: int) -> None:
        pass

    def event_dead_lettered(self, topic: str, cause: MalformedCause) -> None:
        pass

    def consumer_lag(self, lag: PartitionLag) -> None:
        pass

    def kafka_reachable(self, up: bool) -> None:
        self.up.append(up)


class Output(io.StringIO):
    def isatty(self) -> bool:
        return False

    def events(self) -> list[dict[str, object]]:
        return [orjson.loads(line) for line in self.getvalue().splitlines()]


async def answers() -> None:
    pass


async def refuses() -> None:
    raise KafkaConnectionError("Unable to get cluster metadata over all known brokers")


async def test_an_outage_is_said_once_when_it_begins_and_once_when_it_ends() -> None:
    output = Output()
    configure_logging("json", "INFO", output)
    now = [100.0]
    watched = Watched()
    liveness = KafkaLiveness("kafka:9092", watched, clock=lambda: now[0])
    liveness.started()
    assert liveness.connected
    await liveness.probe(answers)
    for _ in range(5):  # ten seconds of a broker that is down
        await liveness.probe(refuses)
        now[0] += 2
    assert not liveness.connected
    await liveness.probe(answers)
    await liveness.probe(answers)
    assert liveness.connected

    said = [line for line in output.events() if str(line["event"]).startswith("consumer.kafka")]
    assert [line["event"] for line in said] == ["consumer.kafka_lost", "consumer.kafka_restored"]
    assert said[0]["bootstrap_servers"] == "kafka:9092"
    assert "metadata" in str(said[0]["error"])
    assert said[1]["down_s"] == 10.0
    assert watched.up == [True, False, True]


async def test_an_outage_that_restarted_the_consumer_ends_when_it_joins_again() -> None:
    output = Output()
    configure_logging("json", "INFO", output)
    liveness = KafkaLiveness("kafka:9092", Watched(), clock=lambda: 0.0)
    liveness.started()
    await liveness.probe(refuses)
    liveness.stopped()  # the consumer fell over meanwhile and waits for Kafka to start again
    liveness.started()
    events = [line["event"] for line in output.events()]
    assert events == ["consumer.kafka_lost", "consumer.kafka_restored"]


async def test_a_consumer_that_never_joined_reports_no_outage() -> None:
    output = Output()
    configure_logging("json", "INFO", output)
    liveness = KafkaLiveness("kafka:9092", Watched())
    await liveness.probe(refuses)  # the start-up lines (consumer.kafka_unreachable) say it
    assert not liveness.connected
    assert output.events() == []
