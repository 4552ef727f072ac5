import pytest

from edge_runtime import Device, DeviceStringError


@pytest.mark.legacy
@pytest.mark.parametrize(
    "text, kind, detail",
    [
        ("auto", "auto", ""),
        ("cpu", "cpu", ""),
        ("CPU", "cpu", ""),  # case-insensitive kind
        ("gpu", "gpu", ""),
        ("gpu:/opt/lib/libdelegate.so", "gpu", "/opt/lib/libdelegate.so"),  # delegate library by path
        ("edgetpu", "edgetpu", ""),
        ("edgetpu:usb", "edgetpu", "usb"),  # any USB Edge TPU
        ("edgetpu:usb:0", "edgetpu", "usb:0"),  # pycoral's device naming
        ("edgetpu:pci:1", "edgetpu", "pci:1"),
    ],
)
def test_valid_device_strings(text, kind, detail):
    device = Device.parse(text)
    assert (device.kind, device.detail) == (kind, detail)
    assert Device.parse(str(device)) == device  # round trip
    assert device.explicit == (kind != "auto")


@pytest.mark.legacy
@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "non-empty"),
        ("tpu", "unknown device"),  # not a kind we know
        ("cpu:2", "takes no"),  # threads are a separate argument
        ("edgetpu:serial:0", "edgetpu:usb"),  # only usb / pci buses
        ("edgetpu:usb:x", "edgetpu:usb:N"),  # index must be a number
        (3, "non-empty string"),
    ],
)
def test_invalid_device_strings_say_what_is_expected(text, expected):
    with pytest.raises(DeviceStringError, match=expected):
        Device.parse(text)
