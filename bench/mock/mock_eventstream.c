#include "mock.h"
