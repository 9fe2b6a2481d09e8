import sys

from keras_mdr.cli import main

sys.exit(main())
