"""A step's CPU on Spark counts the Java process: a child that runs the whole run and is never waited for, so
getrusage's RUSAGE_CHILDREN leaves it out and the engine reads it from /proc."""
from __future__ import annotations

import resource

import pytest

from clickstream.profile import Profile

pytestmark = pytest.mark.spark


def _own_cpu() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def test_a_spark_step_counts_the_cpu_of_the_java_process(spark):
    profile = Profile(outside_cpu=spark.outside_cpu_seconds)
    jvm_before, own_before = spark.outside_cpu_seconds(), _own_cpu()
    with profile.step("busy query", "test"):
        _, rows = spark.fetch("select count(distinct hash(id, 7) % 1000003) from range(0, 3000000)")
    jvm, own = spark.outside_cpu_seconds() - jvm_before, _own_cpu() - own_before
    assert rows[0][0] > 0
    (step,) = profile.record()
    assert jvm >= 0.5, jvm  # the query's work, done in the Java process
    assert own < jvm  # and not seen by getrusage
    assert step["cpu_seconds"] >= jvm - 0.02, (step, jvm, own)
