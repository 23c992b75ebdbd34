// JFF_LONG_EMU only: ends the renaming that emu_core.h starts (see there).
#pragma once
#undef Ops
#undef kSignBits
#undef movmatrix_trans
#undef ldmatrix_x4_trans
#undef cmul
#undef load8
#undef store8
#undef unpack8
#undef pack8
