#ifndef SPAN_COLLECTOR_CZLIB_SHIM_H
#define SPAN_COLLECTOR_CZLIB_SHIM_H
#include <zlib.h>
#endif
