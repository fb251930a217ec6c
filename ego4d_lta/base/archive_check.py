"""The checksums a zip archive records, checked: `torch.save`'s format stores a CRC-32 per member, which `torch.load`
never compares (memory-mapped or not), so a flipped bit in a tensor's bytes loads as a slightly other value."""

from __future__ import annotations

import zipfile
from pathlib import Path

CHUNK = 1 << 22


def zip_damage(path: Path) -> str | None:
    """Why the zip archive at `path` does not hold what it recorded (a member whose bytes do not match its CRC-32,
    or that its headers do not describe), or None when every member checks out.

    A file that is no zip archive at all is None too (torch's legacy format records no checksum: `torch.load`
    judges it). A member whose recorded CRC is 0 is not checked: `torch.save` writes 0 when its CRC option is off
    (a real CRC of 0 is a 1 in 2**32 chance). OSErrors reading the file propagate."""
    try:
        archive = zipfile.ZipFile(path)
    except OSError:
        raise
    except Exception:  # no zip, or headers zipfile cannot follow: torch.load judges the file
        return None
    with archive:
        for info in archive.infolist():
            if info.CRC == 0 or info.is_dir():
                continue
            try:
                with archive.open(info) as member:
                    while member.read(CHUNK):
                        pass
            except OSError:
                raise
            except Exception as e:  # a bad CRC, a member cut short, headers that disagree: all mean damaged
                why = str(e)[:160] or type(e).__name__
                return why if info.filename in why else f"{why} (member {info.filename[:80]!r})"
    return None
