"""The CPU a time was measured on (ser_tf.util.machine)."""

from ser_tf.util.machine import cpu_info, describe_cpu

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse4_2 avx avx2 fma f16c
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse4_2 avx avx2 fma f16c
"""
# A Raspberry Pi 4 names its vector extensions "Features" and its board "Model".
PI = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU part\t: 0xd08

Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""


def test_cpu_info_names_model_and_vector_extensions(tmp_path):
    (tmp_path / "x86").write_text(X86)
    (tmp_path / "pi").write_text(PI)
    amd = cpu_info(tmp_path / "x86")
    assert amd["model_name"] == "AMD EPYC 7B13"
    assert amd["simd"] == ["sse4_2", "avx", "avx2", "fma", "f16c"]  # no avx512: that matters
    assert describe_cpu(amd).startswith("AMD EPYC 7B13 (") and "avx2" in describe_cpu(amd)
    assert "avx512f" not in describe_cpu(amd)
    pi = cpu_info(tmp_path / "pi")
    assert pi["model_name"] == "Raspberry Pi 4 Model B Rev 1.4" and pi["simd"] == ["asimd"]
    missing = cpu_info(tmp_path / "absent")  # macOS has no /proc/cpuinfo: no crash, no guess
    assert missing["model_name"] is None and missing["simd"] == []
    assert missing["cpu_count"] >= 1
    assert describe_cpu(None).startswith("a CPU the record does not name")
