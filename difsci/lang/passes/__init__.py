"""IR → IR passes, one public function per module."""
