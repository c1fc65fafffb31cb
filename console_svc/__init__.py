"""The console: the browser's way into quoteflow. One HTTP process that serves the
web page (web/) and bridges its Connect and gRPC-Web calls to the three
services through their generated gRPC stubs."""
