"""jetlab.plot"""
