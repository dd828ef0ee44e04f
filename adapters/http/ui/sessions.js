// The sessions page (being written).
'use strict';
