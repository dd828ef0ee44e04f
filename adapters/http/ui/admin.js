// The admin page (being written).
'use strict';
